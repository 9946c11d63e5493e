// `--set KEY=VALUE` (internal to experiment/): a dotted path and a TOML value, put into the parsed
// file before anything reads it, so that an override is checked like the file itself.
#pragma once

#include <string>
#include <vector>

#include "experiment/toml_options.hpp"

namespace flatface {

// Applies each "a.b.c=<toml value>" in order (a bare word is a string: device=cpu), creating the
// tables a path names; an index walks into an array (setup.1.name=x). Returns the nodes put in,
// each with its KEY, for messages. Throws ConfigError for a malformed assignment or path.
SetNodes apply_overrides(toml::table& root, const std::vector<std::string>& overrides);

}  // namespace flatface
