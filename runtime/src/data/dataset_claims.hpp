// Which dataset plugin reads a path given on the command line (`data info`, `eval`, `embed`,
// `data pairs --from`): the plugins' claim functions decide (flatface/dataset.hpp).
#pragma once

#include <string>
#include <vector>

#include "experiment/experiment.hpp"
#include "plugin_host/registry.hpp"

namespace flatface {

enum class DataRole { train, verification };

const char* to_string(DataRole role);  // "training set", "verification set"

struct PathOwner {
  std::string plugin;
  PathClaim claim;
};

// What every dataset plugin with a claim function makes of `path` (an existing file or folder),
// in registry order; the plugins that claim nothing are left out.
std::vector<PathOwner> claims_on(const Registry& reg, const std::string& path);

// Every dataset plugin and what it reads from a path, one "\n  name: accepts" line each.
std::string what_plugins_read(const Registry& reg);

// The reference `{ plugin = P, path = ABSOLUTE }` for `path` in `role`. `plugin` (from --dataset)
// names the plugin instead of asking the claims. ConfigError when no plugin claims the path for
// the role (listing every dataset plugin and what it accepts) or when two do (naming both).
PluginRef claimed_ref(const Registry& reg, const std::string& path, DataRole role,
                      const std::string& plugin = "");

}  // namespace flatface
