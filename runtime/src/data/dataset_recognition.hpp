// Which dataset plugin reads a path given on the command line (`data info`, `eval`, `embed`,
// `data pairs --from`): the plugins' recognise functions decide (flatface/dataset.hpp).
#pragma once

#include <string>
#include <vector>

#include "experiment/experiment.hpp"
#include "plugin_host/registry.hpp"

namespace flatface {

enum class DataRole { train, verification };

const char* to_string(DataRole role);  // "training set", "verification set"

// A dataset plugin that recognises a path, and the roles it reads it in.
struct Recogniser {
  std::string plugin;
  PathRecognition roles;
};

// Every dataset plugin that recognises `path` (an existing file or folder) in a role it has a
// factory for, in registry order.
std::vector<Recogniser> recognisers_of(const Registry& reg, const std::string& path);

// Every dataset plugin and what it reads from a path, one "\n  name: accepts" line each.
std::string what_plugins_read(const Registry& reg);

// The reference `{ plugin = P, path = ABSOLUTE }` for `path` in `role`. `plugin` (from --dataset)
// names the plugin instead of asking the plugins. ConfigError when no plugin recognises the path
// in the role (listing every dataset plugin and what it accepts) or when two do (naming both).
PluginRef recognised_ref(const Registry& reg, const std::string& path, DataRole role,
                         const std::string& plugin = "");

}  // namespace flatface
