// `npy-stack`: face images kept as numpy arrays, a dataset format built out of tree on the SDK's
// image helpers (flatface/image_codec.hpp's resize, flatface/decoded_pairs.hpp).
//   training set:     images = "x.npy" (uint8 [N,H,W,3] RGB or [N,H,W] grey) and labels = "y.npy"
//                     (int32 or int64 [N], >= 0); the classes are 0 .. max label
//   verification set: images (as above, [2P,...]: pair i is images 2i and 2i+1) and
//                     issame = "s.npy" (bool [P])
// Images not of the backbone's input size are resized bilinearly. Relative paths resolve against
// DatasetArgs::base_dir.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <flatface/decoded_pairs.hpp>
#include <flatface/image_codec.hpp>
#include <flatface/plugin.hpp>
#include <string>
#include <utility>
#include <vector>

namespace {

using flatface::Image;
using flatface::RuntimeError;

// A C-order array from a .npy file (format versions 1 to 3), little-endian.
struct Npy {
  std::string path;
  std::string descr;  // '|u1', '<i4', '<i8', '|b1'
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> data;
};

Npy read_npy(const std::string& path) {
  Npy npy{path, "", {}, flatface::read_file_bytes(path)};
  auto fail = [&](const std::string& why) -> void {
    throw RuntimeError(path + ": not a .npy array npy-stack reads: " + why);
  };
  const auto& b = npy.data;
  if (b.size() < 10 || std::memcmp(b.data(), "\x93NUMPY", 6) != 0) fail("no \\x93NUMPY magic");
  std::size_t length = 0, start = 0;
  if (b[6] == 1) {
    length = b[8] | std::size_t{b[9]} << 8;
    start = 10;
  } else if ((b[6] == 2 || b[6] == 3) && b.size() >= 12) {
    for (int i = 3; i >= 0; --i) length = length << 8 | b[8 + i];
    start = 12;
  } else {
    fail("format version " + std::to_string(b[6]));
  }
  if (start + length > b.size()) fail("the header runs past the end of the file");
  // e.g. {'descr': '|u1', 'fortran_order': False, 'shape': (32, 56, 56, 3), }
  const std::string header(b.begin() + start, b.begin() + start + length);
  auto value = [&](const std::string& key) {
    auto at = header.find("'" + key + "':");
    if (at == std::string::npos) fail("no '" + key + "' in the header");
    return header.find_first_not_of(' ', at + key.size() + 3);
  };
  auto d = value("descr");
  npy.descr = header.substr(d + 1, header.find('\'', d + 1) - d - 1);
  if (header.compare(value("fortran_order"), 5, "False") != 0) fail("Fortran order");
  auto s = value("shape");
  std::string dims = header.substr(s + 1, header.find(')', s) - s - 1);
  for (std::size_t i = 0; i < dims.size();) {
    std::size_t end = std::min(dims.find(',', i), dims.size());
    if (dims.find_first_not_of(' ', i) < end)
      npy.shape.push_back(std::stoll(dims.substr(i, end - i)));
    i = end + 1;
  }
  std::size_t item = npy.descr == "|u1" || npy.descr == "|b1" ? 1
                     : npy.descr == "<i4"                     ? 4
                     : npy.descr == "<i8"                     ? 8
                                                              : 0;
  if (item == 0) fail("dtype '" + npy.descr + "' (expected |u1, |b1, <i4 or <i8)");
  std::size_t count = 1;
  for (auto n : npy.shape) count *= static_cast<std::size_t>(n);
  npy.data.erase(npy.data.begin(), npy.data.begin() + start + length);
  if (npy.data.size() != count * item) {
    fail("shape and dtype ask for " + std::to_string(count * item) +
         " bytes of data, the file has " + std::to_string(npy.data.size()));
  }
  return npy;
}

// The .npy file named by option `key`.
Npy open_option(const flatface::DatasetArgs& args, const std::string& key) {
  std::filesystem::path p = args.options.require_string(key);
  if (p.is_relative()) p = std::filesystem::path(args.base_dir) / p;
  return read_npy(p.string());
}

// uint8 [N,H,W,3] or [N,H,W]: image i as RGB.
class ImageStack {
 public:
  explicit ImageStack(Npy npy) : npy_(std::move(npy)) {
    const auto& s = npy_.shape;
    if (npy_.descr != "|u1" || !(s.size() == 3 || (s.size() == 4 && s[3] == 3))) {
      throw RuntimeError(npy_.path + ": images must be uint8 [N,H,W,3] or [N,H,W]");
    }
  }
  std::size_t size() const { return static_cast<std::size_t>(npy_.shape[0]); }
  Image image(std::size_t i) const {
    Image img{static_cast<int>(npy_.shape[1]), static_cast<int>(npy_.shape[2]), {}};
    const std::size_t pixels = static_cast<std::size_t>(img.height) * img.width;
    const bool grey = npy_.shape.size() == 3;
    const std::uint8_t* src = npy_.data.data() + i * pixels * (grey ? 1 : 3);
    img.pixels.resize(pixels * 3);
    for (std::size_t p = 0; p < pixels * 3; ++p) img.pixels[p] = grey ? src[p / 3] : src[p];
    return img;
  }

 private:
  Npy npy_;
};

// One value per entry of a 1-D array of integers or bools.
std::vector<std::int64_t> integers(const Npy& npy) {
  if (npy.shape.size() != 1) throw RuntimeError(npy.path + ": expected a 1-D array");
  std::vector<std::int64_t> out(static_cast<std::size_t>(npy.shape[0]));
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (npy.descr == "<i8") {
      std::memcpy(&out[i], npy.data.data() + 8 * i, 8);
    } else if (npy.descr == "<i4") {
      std::int32_t v;
      std::memcpy(&v, npy.data.data() + 4 * i, 4);
      out[i] = v;
    } else {
      out[i] = npy.data[i];
    }
  }
  return out;
}

class NpyTrainSet final : public flatface::TrainSet {
 public:
  NpyTrainSet(ImageStack images, std::vector<std::int64_t> labels, std::int64_t side)
      : images_(std::move(images)), labels_(std::move(labels)), side_(static_cast<int>(side)) {
    for (auto y : labels_) {
      if (y < 0) throw RuntimeError("npy-stack: a label is negative (" + std::to_string(y) + ")");
      classes_ = std::max(classes_, y + 1);
    }
  }
  std::size_t size() const override { return labels_.size(); }
  std::int64_t num_classes() const override { return classes_; }
  flatface::Sample get(std::size_t i) const override {
    Image img = images_.image(i);
    if (img.height != side_ || img.width != side_) img = flatface::resize(img, side_);
    return {std::move(img), labels_.at(i)};
  }
  std::string describe() const override {
    return "npy-stack: " + std::to_string(size()) + " images, " + std::to_string(classes_) +
           " identities";
  }

 private:
  ImageStack images_;
  std::vector<std::int64_t> labels_;
  int side_;
  std::int64_t classes_ = 0;
};

std::shared_ptr<flatface::TrainSet> make_train_set(const flatface::DatasetArgs& args) {
  ImageStack images(open_option(args, "images"));
  std::vector<std::int64_t> labels = integers(open_option(args, "labels"));
  if (labels.size() != images.size()) {
    throw RuntimeError("npy-stack: " + std::to_string(images.size()) + " images but " +
                       std::to_string(labels.size()) + " labels");
  }
  return std::make_shared<NpyTrainSet>(std::move(images), std::move(labels), args.input_size);
}

std::shared_ptr<flatface::VerificationSet> make_pairs(const flatface::DatasetArgs& args) {
  ImageStack images(open_option(args, "images"));
  std::vector<std::int64_t> same = integers(open_option(args, "issame"));
  if (images.size() != 2 * same.size()) {
    throw RuntimeError("npy-stack: " + std::to_string(same.size()) + " pairs need " +
                       std::to_string(2 * same.size()) + " images, not " +
                       std::to_string(images.size()));
  }
  auto decoded = flatface::datasets::decode_all(images.size(), static_cast<int>(args.input_size),
                                                [&](std::size_t i) { return images.image(i); });
  return std::make_shared<flatface::datasets::DecodedPairs>(
      std::move(decoded), std::vector<bool>(same.begin(), same.end()),
      "npy-stack: " + std::to_string(same.size()) + " pairs");
}

}  // namespace

FLATFACE_PLUGIN(flatface::dataset_entry("npy-stack",
                                        "numpy image stacks (uint8 [N,H,W,3]) with labels or pairs",
                                        &make_train_set, &make_pairs))
