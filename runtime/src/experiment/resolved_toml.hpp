// The experiment file as the runs use it, after --set (internal to experiment/): the text kept in
// Experiment::resolved_toml and written with every result.
#pragma once

#include <toml++/toml.h>

#include <string>

namespace flatface {

// The table as TOML text, every float in its shortest exact form (0.333, not 0.33300000000000002).
std::string toml_text(toml::table root);

}  // namespace flatface
