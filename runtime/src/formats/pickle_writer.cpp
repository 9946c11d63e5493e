// The writer of verification files' pickles: `(images, issame)` as Python 2 str and bools.
#include <limits>

#include "flatface/options.hpp"
#include "formats/pickle.hpp"
#include "formats/pickle_opcodes.hpp"

namespace flatface::pickle {
namespace {

void put_le32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

}  // namespace

std::vector<std::uint8_t> dump_bytes_and_bools(const std::vector<std::vector<std::uint8_t>>& images,
                                               const std::vector<bool>& flags) {
  constexpr std::size_t kBatch = 1000;  // items per APPENDS, as Python writes them
  std::vector<std::uint8_t> out{code_of("PROTO"), 2, code_of("EMPTY_LIST")};
  for (std::size_t i = 0; i < images.size(); ++i) {
    if (i % kBatch == 0) out.push_back(code_of("MARK"));
    const auto& img = images[i];
    if (img.size() < 256) {
      out.push_back(code_of("SHORT_BINSTRING"));
      out.push_back(static_cast<std::uint8_t>(img.size()));
    } else {
      if (img.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        throw RuntimeError("pickle: image " + std::to_string(i) + " is larger than 2 GiB");
      out.push_back(code_of("BINSTRING"));
      put_le32(out, static_cast<std::uint32_t>(img.size()));
    }
    out.insert(out.end(), img.begin(), img.end());
    if (i % kBatch == kBatch - 1 || i + 1 == images.size()) out.push_back(code_of("APPENDS"));
  }
  out.push_back(code_of("EMPTY_LIST"));
  for (std::size_t i = 0; i < flags.size(); ++i) {
    if (i % kBatch == 0) out.push_back(code_of("MARK"));
    out.push_back(flags[i] ? code_of("NEWTRUE") : code_of("NEWFALSE"));
    if (i % kBatch == kBatch - 1 || i + 1 == flags.size()) out.push_back(code_of("APPENDS"));
  }
  out.push_back(code_of("TUPLE2"));
  out.push_back(code_of("STOP"));
  return out;
}

}  // namespace flatface::pickle
