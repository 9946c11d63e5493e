// JSON for the tests, read with nlohmann-json: the reference vectors in shared/vectors (Python's
// json module writes 17 significant digits, which the parser reads back exactly) and what
// `flatface` prints or writes with --json / --format json.
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace flatface::testing {

using Json = nlohmann::json;

inline Json load_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  return Json::parse(in);
}

// A (nested) array of numbers, flattened row-major.
inline void append_numbers(const Json& v, std::vector<double>& out) {
  if (!v.is_array()) {
    out.push_back(v.get<double>());
    return;
  }
  for (const auto& item : v) append_numbers(item, out);
}
inline std::vector<double> numbers_of(const Json& v) {
  std::vector<double> out;
  append_numbers(v, out);
  return out;
}

}  // namespace flatface::testing
