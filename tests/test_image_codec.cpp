// Encoded images to RGB and back: format sniffing, PGM/PPM parsing, PNG/JPEG, bilinear resize.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "catch_compat.hpp"
#include "data_test_support.hpp"
#include "flatface/image_codec.hpp"

using flatface::Image;
using flatface::ImageFormat;
using flatface::testing::contains;
using flatface::testing::runtime_error_of;

namespace {

std::vector<std::uint8_t> bytes_of(const std::string& header, std::vector<std::uint8_t> raster) {
  std::vector<std::uint8_t> out(header.begin(), header.end());
  out.insert(out.end(), raster.begin(), raster.end());
  return out;
}

Image gradient(int width, int height) {
  Image image;
  image.width = width;
  image.height = height;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      image.pixels.push_back(static_cast<std::uint8_t>(2 * x));
      image.pixels.push_back(static_cast<std::uint8_t>(2 * y));
      image.pixels.push_back(static_cast<std::uint8_t>(x + y));
    }
  }
  return image;
}

Image noise(int width, int height, unsigned seed) {
  Image image;
  image.width = width;
  image.height = height;
  unsigned s = seed;
  for (int i = 0; i < width * height * 3; ++i) {
    s = s * 1103515245u + 12345u;
    image.pixels.push_back(static_cast<std::uint8_t>(s >> 16));
  }
  return image;
}

}  // namespace

CATCH_TEST_CASE("image formats are recognised by their magic bytes") {
  auto sniff = [](const std::string& s) {
    return flatface::sniff_image_format(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  };
  CATCH_CHECK(sniff("\xff\xd8\xff\xe0rest") == ImageFormat::jpeg);
  CATCH_CHECK(sniff(std::string("\x89PNG\r\n\x1a\n", 8)) == ImageFormat::png);
  CATCH_CHECK(sniff("P5\n2 2\n255\n") == ImageFormat::pgm);
  CATCH_CHECK(sniff("P6 2 2 255 ") == ImageFormat::ppm);
  CATCH_CHECK(sniff("P3\n") == ImageFormat::unknown);  // ASCII PPM is not supported
  CATCH_CHECK(sniff("GIF89a") == ImageFormat::unknown);
  CATCH_CHECK(sniff("") == ImageFormat::unknown);
}

CATCH_TEST_CASE("a PGM becomes three equal channels, its maximum value scaled to 255") {
  // Header with a comment; maxval 15, so 15 -> 255 and 7 -> round(7 * 255 / 15) = 119.
  auto pgm = bytes_of("P5\n# made by hand\n3 1\n15\n", {0, 7, 15});
  Image image = flatface::decode_image(pgm);
  CATCH_REQUIRE(image.width == 3);
  CATCH_REQUIRE(image.height == 1);
  CATCH_CHECK(image.pixels == std::vector<std::uint8_t>{0, 0, 0, 119, 119, 119, 255, 255, 255});
}

CATCH_TEST_CASE("a PPM keeps its RGB triples in row order") {
  auto ppm = bytes_of("P6 2 2 255\n", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  Image image = flatface::decode_image(ppm);
  CATCH_REQUIRE(image.width == 2);
  CATCH_REQUIRE(image.height == 2);
  CATCH_CHECK(image.pixels == std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
}

CATCH_TEST_CASE("16-bit PGM samples are read big-endian and scaled to 8 bits") {
  // maxval 1000: 0x03e8 = 1000 -> 255, 0x01f4 = 500 -> round(500 * 255 / 1000) = 128 (127.5 up).
  auto pgm = bytes_of("P5 2 1 1000\n", {0x03, 0xe8, 0x01, 0xf4});
  Image image = flatface::decode_image(pgm);
  CATCH_CHECK(image.pixels == std::vector<std::uint8_t>{255, 255, 255, 128, 128, 128});
}

CATCH_TEST_CASE("a truncated PGM is an error saying how many pixel bytes were expected") {
  auto pgm = bytes_of("P5\n4 4\n255\n", {1, 2, 3});
  std::string what = runtime_error_of([&] { flatface::decode_image(pgm); });
  CATCH_CHECK(contains(what, "truncated PGM"));
  CATCH_CHECK(contains(what, "needs 16 pixel bytes"));
  CATCH_CHECK(contains(what, "found 3"));
}

CATCH_TEST_CASE("a PGM header claiming a huge image is refused before allocating") {
  auto pgm = bytes_of("P5 100000 100000 255\n", {0});
  CATCH_CHECK(contains(runtime_error_of([&] { flatface::decode_image(pgm); }), "at most"));
}

CATCH_TEST_CASE("unknown bytes are an error that shows the first bytes") {
  std::vector<std::uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a'};
  std::string what = runtime_error_of([&] { flatface::decode_image(gif); });
  CATCH_CHECK(contains(what, "unknown image format"));
  CATCH_CHECK(contains(what, "47 49 46 38"));
}

CATCH_TEST_CASE("PNG encoding then decoding gives back every pixel") {
  Image image = noise(17, 9, 3);
  auto png = flatface::encode_png(image);
  CATCH_CHECK(flatface::sniff_image_format(png.data(), png.size()) == ImageFormat::png);
  Image back = flatface::decode_image(png);
  CATCH_CHECK(back.width == 17);
  CATCH_CHECK(back.height == 9);
  CATCH_CHECK(back.pixels == image.pixels);
  auto info = flatface::probe_image(png.data(), png.size());
  CATCH_CHECK(info.width == 17);
  CATCH_CHECK(info.channels == 3);
}

CATCH_TEST_CASE("JPEG at quality 95 keeps a smooth image within a few levels") {
  Image image = gradient(64, 48);
  auto jpeg = flatface::encode_jpeg(image, 95);
  CATCH_CHECK(flatface::sniff_image_format(jpeg.data(), jpeg.size()) == ImageFormat::jpeg);
  Image back = flatface::decode_image(jpeg);
  CATCH_REQUIRE(back.pixels.size() == image.pixels.size());
  int worst = 0;
  for (std::size_t i = 0; i < image.pixels.size(); ++i) {
    worst = std::max(worst, std::abs(int{back.pixels[i]} - int{image.pixels[i]}));
  }
  CATCH_CHECK(worst <= 6);
}

CATCH_TEST_CASE("a JPEG cut short is an error, not a partly grey image") {
  auto jpeg = flatface::encode_jpeg(noise(64, 64, 1), 95);
  jpeg.resize(jpeg.size() / 2);
  std::string what = runtime_error_of([&] { flatface::decode_image(jpeg); });
  CATCH_CHECK(contains(what, "corrupt JPEG data"));
  CATCH_CHECK(contains(what, "64x64"));
}

CATCH_TEST_CASE("bilinear resize samples at pixel centres (align_corners = false)") {
  // 2x2 grey [[0, 100], [200, 40]] to 4x4. Source coordinate (o + 0.5) / 2 - 0.5 =
  // -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to the last pixel), so rows/columns mix
  // with weights 0, .25, .75, 1:
  //   row 0: 0, 25, 75, 100;     row 3: 200, 160, 80, 40
  //   row 1 = .75 row 0 + .25 row 3 = 50, 58.75, 76.25, 85
  //   row 2 = .25 row 0 + .75 row 3 = 150, 126.25, 78.75, 55
  Image image;
  image.width = image.height = 2;
  for (int v : {0, 100, 200, 40})
    image.pixels.insert(image.pixels.end(), 3, static_cast<std::uint8_t>(v));
  Image out = flatface::resize(image, 4);
  const int expected[16] = {0, 25, 75, 100, 50, 59, 76, 85, 150, 126, 79, 55, 200, 160, 80, 40};
  CATCH_REQUIRE(out.width == 4);
  CATCH_REQUIRE(out.height == 4);
  for (int i = 0; i < 16; ++i) {
    CATCH_CHECK(int{out.pixels[3 * i]} == expected[i]);
    CATCH_CHECK(int{out.pixels[3 * i + 2]} == expected[i]);
  }
}

CATCH_TEST_CASE("resizing to the image's own size changes nothing") {
  Image image = noise(8, 8, 7);
  CATCH_CHECK(flatface::resize(image, 8).pixels == image.pixels);
}
