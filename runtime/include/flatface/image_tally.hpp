// Counts that a dataset's details() (what `flatface data info` prints) reports: the formats and
// sizes of encoded images as stored, and how many images each class holds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace flatface {

// Counts of things by name ("jpeg", "112x112"), printed most frequent first: "jpeg 1845, png 3".
using Tally = std::map<std::string, std::size_t>;
std::string tally_text(const Tally& tally);

class ImageTally {
 public:
  // Reads the header of encoded bytes (no decoding). An unreadable image counts as "unreadable";
  // the reason is returned (empty when it was read).
  std::string add(const std::uint8_t* data, std::size_t size);
  std::string formats() const { return tally_text(formats_); }  // "pgm grey 400"
  std::string sizes() const { return tally_text(sizes_); }      // "92x112 400" (width x height)

 private:
  Tally formats_, sizes_;
};

// "min 10, mean 10.0, max 10" (or "-" for no classes).
std::string per_class_text(const std::vector<std::size_t>& counts);

}  // namespace flatface
