#include "flatface/image_tally.hpp"

#include <algorithm>
#include <sstream>
#include <utility>

#include "flatface/image_codec.hpp"
#include "flatface/options.hpp"

namespace flatface {

std::string tally_text(const Tally& tally) {
  std::vector<std::pair<std::string, std::size_t>> rows(tally.begin(), tally.end());
  std::stable_sort(rows.begin(), rows.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string s;
  for (const auto& [name, n] : rows) s += (s.empty() ? "" : ", ") + name + " " + std::to_string(n);
  return s.empty() ? "-" : s;
}

std::string ImageTally::add(const std::uint8_t* data, std::size_t size) {
  try {
    ImageInfo info = probe_image(data, size);
    ++formats_[std::string(to_string(info.format)) + (info.channels == 1 ? " grey" : "")];
    ++sizes_[std::to_string(info.width) + "x" + std::to_string(info.height)];
    return {};
  } catch (const RuntimeError& e) {
    ++formats_["unreadable"];
    return e.what();
  }
}

std::string per_class_text(const std::vector<std::size_t>& counts) {
  if (counts.empty()) return "-";
  auto [lo, hi] = std::minmax_element(counts.begin(), counts.end());
  std::size_t total = 0;
  for (auto c : counts) total += c;
  std::ostringstream s;
  s.precision(1);
  s << std::fixed << "min " << *lo << ", mean "
    << static_cast<double>(total) / static_cast<double>(counts.size()) << ", max " << *hi;
  return s.str();
}

}  // namespace flatface
