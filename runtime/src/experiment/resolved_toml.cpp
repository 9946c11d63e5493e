#include "experiment/resolved_toml.hpp"

#include <functional>
#include <sstream>
#include <vector>

#include "experiment/number_text.hpp"

namespace flatface {

namespace {

std::string printed(const toml::table& root) {
  std::ostringstream os;
  os << root;
  return os.str();
}

// Replaces every float in `root` by a string `marker` + its index in `floats`.
void swap_floats(toml::node& node, const std::string& marker, std::vector<double>& floats) {
  auto stand_in = [&](double v) {
    floats.push_back(v);
    return marker + std::to_string(floats.size() - 1);
  };
  if (auto t = node.as_table()) {
    std::vector<std::string> keys;
    for (auto&& [key, child] : *t) {
      if (child.is_floating_point())
        keys.emplace_back(key.str());
      else
        swap_floats(child, marker, floats);
    }
    for (const auto& key : keys)
      t->insert_or_assign(key, stand_in(t->get(key)->as_floating_point()->get()));
  } else if (auto a = node.as_array()) {
    for (std::size_t i = 0; i < a->size(); ++i) {
      if (auto f = a->get(i)->as_floating_point())
        a->replace(a->cbegin() + static_cast<std::ptrdiff_t>(i), stand_in(f->get()));
      else
        swap_floats(*a->get(i), marker, floats);
    }
  }
}

}  // namespace

// Debian's toml++ is a compiled library built without TOML_FLOAT_CHARCONV (off for GCC), so it
// prints 17 significant digits; each float is therefore printed by toml++ as a marker string that
// the text cannot otherwise contain, and the markers are then replaced by the numbers.
std::string toml_text(toml::table root) {
  const std::string plain = printed(root);
  std::string marker = "flatface-float-";
  while (plain.find(marker) != std::string::npos) marker += '~';
  std::vector<double> floats;
  swap_floats(root, marker, floats);
  const std::string marked = printed(root);
  std::string out;
  std::size_t from = 0;
  // Each stand-in is printed quoted, as 'marker12' (a literal string) or "marker12".
  for (std::size_t at; (at = marked.find(marker, from)) != std::string::npos;) {
    const std::size_t digits = at + marker.size();
    const std::size_t close = marked.find(marked[at - 1], digits);
    const std::size_t index = std::stoul(marked.substr(digits, close - digits));
    std::string number = shortest_text(floats.at(index));
    // TOML tells a float from an integer by its '.' or exponent (inf and nan are floats).
    if (number.find_first_of(".eni") == std::string::npos) number += ".0";
    out.append(marked, from, at - 1 - from).append(number);
    from = close + 1;
  }
  return out.append(marked, from, std::string::npos);
}

}  // namespace flatface
