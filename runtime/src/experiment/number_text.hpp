// Numbers written back for people to read (resolved TOML, option labels, result attributes): the
// shortest decimal text that reads back to the same double, "0.333" rather than
// "0.33300000000000002".
#pragma once

#include <string>

namespace flatface {

// "0.333", "1e-300", "5e-324", "64", "nan", "inf", "-inf". strtod() of the text gives `v` back
// exactly (for finite `v`).
std::string shortest_text(double v);

}  // namespace flatface
