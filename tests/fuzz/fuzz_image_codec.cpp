// libFuzzer target for the image decoders (JPEG via turbojpeg, PNG via stb, our PGM/PPM parser)
// and the bilinear resize of whatever decodes.
#include <cstddef>
#include <cstdint>

#include "flatface/image_codec.hpp"
#include "flatface/options.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    flatface::probe_image(data, size);
    flatface::Image image = flatface::decode_image(data, size);
    if (static_cast<std::int64_t>(image.width) * image.height <= 512 * 512) {
      flatface::resize(image, 7);
    }
  } catch (const flatface::RuntimeError&) {
  }
  return 0;
}
