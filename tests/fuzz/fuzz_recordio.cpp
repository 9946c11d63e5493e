// libFuzzer target for the RecordIO reader: the first byte picks how the rest is read.
//   0: a record stream, read record after record from offset 0 and unpacked;
//   1: [u16 little-endian index length][index text][.rec bytes], opened as an insightface
//      training folder (no property) and every image record read;
//   2: as 1, with a property "3,112,112".
// Anything but flatface::RuntimeError escaping (or a sanitizer report) is a finding.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "flatface/formats/insightface_rec.hpp"
#include "flatface/formats/recordio.hpp"
#include "flatface/image_codec.hpp"
#include "flatface/options.hpp"

namespace rio = flatface::recordio;

namespace {

void stream(const std::uint8_t* data, std::size_t size) {
  auto src = rio::memory_source(std::vector<std::uint8_t>(data, data + size), "fuzz.rec");
  std::uint64_t offset = 0;
  while (offset < src->size()) {
    rio::Frame f = rio::read_frame(*src, offset);
    rio::Unpacked u = rio::unpack(f.payload.data(), f.payload.size());
    (void)u.label();
    offset = f.end;
  }
}

void indexed(const std::uint8_t* data, std::size_t size, bool with_property) {
  if (size < 2) return;
  std::size_t idx_len = std::min<std::size_t>(data[0] | data[1] << 8, size - 2);
  std::string idx(reinterpret_cast<const char*>(data + 2), idx_len);
  const std::uint8_t* rec = data + 2 + idx_len;
  auto src = rio::memory_source(std::vector<std::uint8_t>(rec, data + size), "fuzz.rec");
  rio::IndexedReader reader(src, rio::parse_index(idx, "fuzz.idx"), "fuzz.idx");
  std::optional<flatface::RecProperty> property;
  if (with_property) property = flatface::parse_rec_property("3,112,112", "property");
  flatface::InsightfaceRec layout(std::move(reader), property, "fuzz.rec");
  for (std::size_t i = 0; i < layout.size(); ++i) {
    try {
      flatface::RecImage r = layout.read(i);
      if (i < 2) flatface::decode_image(r.image_data(), r.image_size());
    } catch (const flatface::RuntimeError&) {
      // one bad record must not stop the others from being read
    }
  }
  layout.identity_ranges();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  try {
    switch (data[0] % 3) {
      case 0:
        stream(data + 1, size - 1);
        break;
      case 1:
        indexed(data + 1, size - 1, false);
        break;
      default:
        indexed(data + 1, size - 1, true);
        break;
    }
  } catch (const flatface::RuntimeError&) {
  }
  return 0;
}
