#include "flatface/image_codec.hpp"

#include <turbojpeg.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

#include "flatface/options.hpp"

// stb_image is used for PNG only (PGM/PPM have their own parser below, JPEG goes to turbojpeg);
// its functions stay private to this file.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_NO_STDIO
#define STBI_MAX_DIMENSIONS (1 << 16)
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace flatface {

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw RuntimeError(what);
}

void check_dimensions(const char* format, std::int64_t width, std::int64_t height) {
  if (width <= 0 || height <= 0 || width * height > kMaxImagePixels) {
    fail(std::string(format) + " image of " + std::to_string(width) + "x" + std::to_string(height) +
         " pixels: expected a positive size of at most " + std::to_string(kMaxImagePixels) +
         " pixels");
  }
}

Image blank(int width, int height) {
  Image image;
  image.width = width;
  image.height = height;
  image.pixels.resize(static_cast<std::size_t>(width) * height * 3);
  return image;
}

// ---- JPEG (turbojpeg) ----

struct TurboHandle {
  tjhandle handle;
  explicit TurboHandle(tjhandle h) : handle(h) {}
  ~TurboHandle() {
    if (handle) tjDestroy(handle);
  }
  TurboHandle(const TurboHandle&) = delete;
  TurboHandle& operator=(const TurboHandle&) = delete;
};

// One handle per thread: turbojpeg handles are not thread safe, and creating one per image costs.
tjhandle decompressor() {
  thread_local TurboHandle h(tjInitDecompress());
  if (!h.handle) fail(std::string("cannot start the JPEG decoder: ") + tjGetErrorStr2(nullptr));
  return h.handle;
}

tjhandle compressor() {
  thread_local TurboHandle h(tjInitCompress());
  if (!h.handle) fail(std::string("cannot start the JPEG encoder: ") + tjGetErrorStr2(nullptr));
  return h.handle;
}

ImageInfo probe_jpeg(const std::uint8_t* data, std::size_t size) {
  tjhandle h = decompressor();
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(h, data, static_cast<unsigned long>(size), &width, &height, &subsamp,
                          &colorspace) != 0) {
    fail(std::string("corrupt JPEG header (") + std::to_string(size) +
         " bytes): " + tjGetErrorStr2(h));
  }
  int channels = colorspace == TJCS_GRAY                                ? 1
                 : (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) ? 4
                                                                        : 3;
  return {ImageFormat::jpeg, width, height, channels};
}

Image decode_jpeg(const std::uint8_t* data, std::size_t size) {
  ImageInfo info = probe_jpeg(data, size);
  check_dimensions("JPEG", info.width, info.height);
  Image image = blank(info.width, info.height);
  tjhandle h = decompressor();
  // Warnings (a truncated scan, bytes missing at the end) count as errors: a silently grey
  // lower half is worse for training than a clear message. LIMITSCANS bounds hostile
  // progressive files.
  int flags = TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS;
  if (tjDecompress2(h, data, static_cast<unsigned long>(size), image.pixels.data(), info.width, 0,
                    info.height, TJPF_RGB, flags) != 0) {
    fail(std::string("corrupt JPEG data (") + std::to_string(info.width) + "x" +
         std::to_string(info.height) + ", " + std::to_string(size) +
         " bytes): " + tjGetErrorStr2(h));
  }
  return image;
}

// ---- PNG (stb_image) ----

int checked_int_size(const char* format, std::size_t size) {
  if (size > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    fail(std::string(format) + " data of " + std::to_string(size) + " bytes is too large");
  }
  return static_cast<int>(size);
}

ImageInfo probe_png(const std::uint8_t* data, std::size_t size) {
  int width = 0, height = 0, channels = 0;
  if (!stbi_info_from_memory(data, checked_int_size("PNG", size), &width, &height, &channels)) {
    fail(std::string("corrupt PNG header (") + std::to_string(size) +
         " bytes): " + stbi_failure_reason());
  }
  return {ImageFormat::png, width, height, channels};
}

Image decode_png(const std::uint8_t* data, std::size_t size) {
  ImageInfo info = probe_png(data, size);
  check_dimensions("PNG", info.width, info.height);
  int width = 0, height = 0, channels = 0;
  stbi_uc* rgb = stbi_load_from_memory(data, static_cast<int>(size), &width, &height, &channels, 3);
  if (!rgb) {
    fail(std::string("corrupt PNG data (") + std::to_string(size) +
         " bytes): " + stbi_failure_reason());
  }
  Image image = blank(width, height);
  std::memcpy(image.pixels.data(), rgb, image.pixels.size());
  stbi_image_free(rgb);
  return image;
}

// ---- PGM / PPM (binary P5 / P6) ----

struct PnmHeader {
  int channels = 0;
  std::int64_t width = 0, height = 0, maxval = 0;
  std::size_t raster_offset = 0;
};

// Netpbm header: magic, then width, height, maxval as decimal numbers separated by whitespace
// (with '#' comments to the end of a line), then exactly one whitespace byte, then the raster.
PnmHeader parse_pnm_header(const std::uint8_t* data, std::size_t size) {
  PnmHeader h;
  const char* name = size >= 2 && data[1] == '5' ? "PGM" : "PPM";
  h.channels = data[1] == '5' ? 1 : 3;
  std::size_t pos = 2;
  auto is_space = [](std::uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  };
  auto number = [&](const char* field) {
    while (pos < size && (is_space(data[pos]) || data[pos] == '#')) {
      if (data[pos] == '#') {
        while (pos < size && data[pos] != '\n' && data[pos] != '\r') ++pos;
      } else {
        ++pos;
      }
    }
    if (pos >= size || data[pos] < '0' || data[pos] > '9') {
      fail(std::string("corrupt ") + name + " header: expected the " + field +
           " as a decimal number at byte " + std::to_string(pos));
    }
    std::int64_t value = 0;
    while (pos < size && data[pos] >= '0' && data[pos] <= '9') {
      value = value * 10 + (data[pos] - '0');
      if (value > 1'000'000'000) {
        fail(std::string("corrupt ") + name + " header: " + field + " too large at byte " +
             std::to_string(pos));
      }
      ++pos;
    }
    return value;
  };
  h.width = number("width");
  h.height = number("height");
  h.maxval = number("maximum value");
  if (pos >= size || !is_space(data[pos])) {
    fail(std::string("corrupt ") + name +
         " header: expected one whitespace byte before the pixels at byte " + std::to_string(pos));
  }
  h.raster_offset = pos + 1;
  if (h.maxval < 1 || h.maxval > 65535) {
    fail(std::string("corrupt ") + name + " header: maximum value " + std::to_string(h.maxval) +
         ", expected 1..65535");
  }
  return h;
}

ImageInfo probe_pnm(const std::uint8_t* data, std::size_t size, ImageFormat format) {
  PnmHeader h = parse_pnm_header(data, size);
  return {format, static_cast<int>(h.width), static_cast<int>(h.height), h.channels};
}

Image decode_pnm(const std::uint8_t* data, std::size_t size) {
  PnmHeader h = parse_pnm_header(data, size);
  const char* name = h.channels == 1 ? "PGM" : "PPM";
  check_dimensions(name, h.width, h.height);
  const std::size_t bytes_per_sample = h.maxval > 255 ? 2 : 1;
  const std::size_t samples = static_cast<std::size_t>(h.width * h.height) * h.channels;
  const std::size_t need = samples * bytes_per_sample;
  if (size - h.raster_offset < need) {
    fail(std::string("truncated ") + name + " data: " + std::to_string(h.width) + "x" +
         std::to_string(h.height) + " needs " + std::to_string(need) + " pixel bytes from byte " +
         std::to_string(h.raster_offset) + ", found " + std::to_string(size - h.raster_offset));
  }
  Image image = blank(static_cast<int>(h.width), static_cast<int>(h.height));
  const std::uint8_t* raster = data + h.raster_offset;
  auto sample = [&](std::size_t i) -> std::uint8_t {
    std::int64_t v = bytes_per_sample == 2 ? (raster[2 * i] << 8) | raster[2 * i + 1] : raster[i];
    if (v > h.maxval) v = h.maxval;  // out-of-range samples saturate, as netpbm tools do
    return static_cast<std::uint8_t>(h.maxval == 255 ? v : (v * 255 + h.maxval / 2) / h.maxval);
  };
  const std::size_t pixels = static_cast<std::size_t>(h.width * h.height);
  for (std::size_t p = 0; p < pixels; ++p) {
    for (int c = 0; c < 3; ++c) {
      image.pixels[3 * p + c] = sample(h.channels == 1 ? p : 3 * p + c);
    }
  }
  return image;
}

std::string hex_prefix(const std::uint8_t* data, std::size_t size) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < std::min<std::size_t>(size, 4); ++i) {
    if (i) s += ' ';
    s += digits[data[i] >> 4];
    s += digits[data[i] & 15];
  }
  return s.empty() ? "(empty)" : s;
}

[[noreturn]] void unknown_format(const std::uint8_t* data, std::size_t size) {
  fail("unknown image format (first bytes " + hex_prefix(data, size) +
       "): expected JPEG, PNG, PGM (P5) or PPM (P6)");
}

}  // namespace

const char* to_string(ImageFormat format) {
  switch (format) {
    case ImageFormat::jpeg:
      return "jpeg";
    case ImageFormat::png:
      return "png";
    case ImageFormat::pgm:
      return "pgm";
    case ImageFormat::ppm:
      return "ppm";
    case ImageFormat::unknown:
      break;
  }
  return "unknown";
}

ImageFormat sniff_image_format(const std::uint8_t* data, std::size_t size) {
  static const std::uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) return ImageFormat::jpeg;
  if (size >= 8 && std::memcmp(data, png, 8) == 0) return ImageFormat::png;
  if (size >= 3 && data[0] == 'P' && (data[1] == '5' || data[1] == '6')) {
    std::uint8_t c = data[2];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '#') {
      return data[1] == '5' ? ImageFormat::pgm : ImageFormat::ppm;
    }
  }
  return ImageFormat::unknown;
}

ImageInfo probe_image(const std::uint8_t* data, std::size_t size) {
  ImageFormat format = sniff_image_format(data, size);
  switch (format) {
    case ImageFormat::jpeg:
      return probe_jpeg(data, size);
    case ImageFormat::png:
      return probe_png(data, size);
    case ImageFormat::pgm:
    case ImageFormat::ppm:
      return probe_pnm(data, size, format);
    case ImageFormat::unknown:
      break;
  }
  unknown_format(data, size);
}

Image decode_image(const std::uint8_t* data, std::size_t size) {
  switch (sniff_image_format(data, size)) {
    case ImageFormat::jpeg:
      return decode_jpeg(data, size);
    case ImageFormat::png:
      return decode_png(data, size);
    case ImageFormat::pgm:
    case ImageFormat::ppm:
      return decode_pnm(data, size);
    case ImageFormat::unknown:
      break;
  }
  unknown_format(data, size);
}

std::vector<std::uint8_t> read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '" + path + "': " + std::strerror(errno));
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  if (in.bad()) fail("cannot read '" + path + "': " + std::strerror(errno));
  return bytes;
}

Image load_image_file(const std::string& path) {
  std::vector<std::uint8_t> bytes = read_file_bytes(path);
  try {
    return decode_image(bytes);
  } catch (const RuntimeError& e) {
    fail(path + ": " + e.what());
  }
}

std::vector<std::uint8_t> encode_jpeg(const Image& image, int quality) {
  check_dimensions("JPEG", image.width, image.height);
  tjhandle h = compressor();
  unsigned char* out = nullptr;
  unsigned long out_size = 0;
  if (tjCompress2(h, image.pixels.data(), image.width, 0, image.height, TJPF_RGB, &out, &out_size,
                  TJSAMP_420, quality, 0) != 0) {
    std::string why = tjGetErrorStr2(h);
    tjFree(out);
    fail("JPEG encoding failed: " + why);
  }
  std::vector<std::uint8_t> bytes(out, out + out_size);
  tjFree(out);
  return bytes;
}

std::vector<std::uint8_t> encode_png(const Image& image) {
  check_dimensions("PNG", image.width, image.height);
  std::vector<std::uint8_t> bytes;
  auto append = [](void* context, void* data, int size) {
    auto* out = static_cast<std::vector<std::uint8_t>*>(context);
    auto* p = static_cast<const std::uint8_t*>(data);
    out->insert(out->end(), p, p + size);
  };
  if (!stbi_write_png_to_func(append, &bytes, image.width, image.height, 3, image.pixels.data(),
                              image.width * 3)) {
    fail("PNG encoding failed");
  }
  return bytes;
}

Image resize(const Image& image, int side) {
  if (image.width == side && image.height == side) return image;
  if (side <= 0 || image.width <= 0 || image.height <= 0) {
    fail("cannot resize a " + std::to_string(image.width) + "x" + std::to_string(image.height) +
         " image to " + std::to_string(side) + "x" + std::to_string(side));
  }
  Image out = blank(side, side);
  // Per output coordinate: the two source neighbours and the weight of the second one.
  struct Tap {
    int i0, i1;
    float w;
  };
  auto taps = [side](int in) {
    std::vector<Tap> t(side);
    const float scale = static_cast<float>(in) / static_cast<float>(side);
    for (int o = 0; o < side; ++o) {
      float src = std::max(0.0f, (static_cast<float>(o) + 0.5f) * scale - 0.5f);
      int i0 = std::min(static_cast<int>(src), in - 1);
      t[o] = {i0, std::min(i0 + 1, in - 1), src - static_cast<float>(i0)};
    }
    return t;
  };
  const std::vector<Tap> ty = taps(image.height), tx = taps(image.width);
  const std::uint8_t* src = image.pixels.data();
  const std::size_t row = static_cast<std::size_t>(image.width) * 3;
  for (int y = 0; y < side; ++y) {
    const Tap& a = ty[y];
    for (int x = 0; x < side; ++x) {
      const Tap& b = tx[x];
      for (int c = 0; c < 3; ++c) {
        auto at = [&](int yy, int xx) { return static_cast<float>(src[yy * row + xx * 3 + c]); };
        float top = (1 - b.w) * at(a.i0, b.i0) + b.w * at(a.i0, b.i1);
        float bottom = (1 - b.w) * at(a.i1, b.i0) + b.w * at(a.i1, b.i1);
        float v = (1 - a.w) * top + a.w * bottom;
        out.pixels[(static_cast<std::size_t>(y) * side + x) * 3 + c] =
            static_cast<std::uint8_t>(std::clamp(std::lround(v), 0L, 255L));
      }
    }
  }
  return out;
}

}  // namespace flatface
