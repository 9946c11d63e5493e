// Encoded image bytes <-> flatface::Image (8-bit RGB, HWC): JPEG, PNG, PGM/PPM, and resizing.
//
// Errors are flatface::RuntimeError saying what is wrong and where in the bytes; the caller adds
// which file or record the bytes came from.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "flatface/dataset.hpp"

namespace flatface {

enum class ImageFormat { unknown, jpeg, png, pgm, ppm };

const char* to_string(ImageFormat format);

// The format named by the leading magic bytes (FF D8 FF, 89 'PNG', "P5", "P6"); never throws.
ImageFormat sniff_image_format(const std::uint8_t* data, std::size_t size);

// What the header says, without decoding the pixels.
struct ImageInfo {
  ImageFormat format = ImageFormat::unknown;
  int width = 0;
  int height = 0;
  int channels = 0;  // as stored: 1 grey, 3 colour (4 for PNG with alpha, dropped on decode)
};
ImageInfo probe_image(const std::uint8_t* data, std::size_t size);

// Decodes any supported format to RGB; grey images get their value in all three channels.
Image decode_image(const std::uint8_t* data, std::size_t size);
inline Image decode_image(const std::vector<std::uint8_t>& bytes) {
  return decode_image(bytes.data(), bytes.size());
}

// The whole file as bytes; RuntimeError naming the file when it cannot be read.
std::vector<std::uint8_t> read_file_bytes(const std::string& path);
// read_file_bytes + decode_image, with the file's path in any error.
Image load_image_file(const std::string& path);

// Baseline JPEG with 4:2:0 chroma subsampling, as OpenCV and PIL write by default.
std::vector<std::uint8_t> encode_jpeg(const Image& image, int quality = 95);
std::vector<std::uint8_t> encode_png(const Image& image);

// Bilinear resize to side x side, sampling at pixel centres (align_corners = false, no
// antialiasing): source coordinate = (dst + 0.5) * in / out - 0.5, clamped to the image.
Image resize(const Image& image, int side);

// Images larger than this (in pixels) are refused before any allocation.
constexpr std::int64_t kMaxImagePixels = std::int64_t{1} << 26;

}  // namespace flatface
