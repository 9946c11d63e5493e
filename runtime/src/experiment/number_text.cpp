#include "experiment/number_text.hpp"

#include <charconv>
#include <cmath>
#include <system_error>

namespace flatface {

std::string shortest_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  // std::to_chars without a precision is the shortest round-trip form (C++17, [charconv]).
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof buf, v);
  if (result.ec != std::errc()) return std::to_string(v);  // unreachable: 64 chars always suffice
  return std::string(buf, result.ptr);
}

}  // namespace flatface
