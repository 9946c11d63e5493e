// `npy-stack`: face images kept as numpy arrays, a dataset format built out of tree on the SDK's
// helpers (flatface/decoded_pairs.hpp, flatface/image_codec.hpp's file reading).
//   training set:     images = "x.npy" (uint8 [N,H,W,3] RGB or [N,H,W] grey) and labels = "y.npy"
//                     (int32 or int64 [N], >= 0); the classes are 0 .. max label
//   verification set: images (as above, [2P,...]: pair i is images 2i and 2i+1) and
//                     issame = "s.npy" (bool [P])
// or, instead of those options, path = "STEM.npy" with its companion beside it: STEM.labels.npy
// for a training set, STEM.issame.npy for a verification set. Given on the command line
// (`flatface data info x.npy`, `flatface eval ... x.npy`), a .npy file that starts with numpy's
// magic is recognised in each role whose companion exists. Images keep their stored size (the host
// resizes). Relative paths resolve against DatasetArgs::base_dir.
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

std::string resolve(const flatface::DatasetArgs& args, const std::string& key) {
  std::filesystem::path p = args.options.require_string(key);
  return (p.is_relative() ? std::filesystem::path(args.base_dir) / p : p).string();
}

// STEM.npy -> STEM.<companion>.npy
std::string companion_of(const std::string& stack, const std::string& companion) {
  std::filesystem::path p(stack);
  return p.replace_extension("." + companion + ".npy").string();
}

// The image stack and its companion array (`labels` or `issame`): from the option `path` and the
// companion file beside it, or from the options `images` and `<companion>`.
std::pair<Npy, Npy> open_stack(const flatface::DatasetArgs& args, const std::string& companion) {
  if (args.options.has("path")) {
    const std::string stack = resolve(args, "path");
    return {read_npy(stack), read_npy(companion_of(stack, companion))};
  }
  return {read_npy(resolve(args, "images")), read_npy(resolve(args, companion))};
}

// A .npy file (by its magic) whose companion for a role exists beside it.
flatface::PathRecognition recognise(const flatface::PathProbe& p) {
  static const char magic[] = "\x93NUMPY";
  if (p.is_directory || p.head.size() < 6 || std::memcmp(p.head.data(), magic, 6) != 0) return {};
  return {std::filesystem::is_regular_file(companion_of(p.path, "labels")),
          std::filesystem::is_regular_file(companion_of(p.path, "issame"))};
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
  std::string shape() const {  // "uint8 [32,56,56,3]"
    std::string text;
    for (auto n : npy_.shape) text += (text.empty() ? "" : ",") + std::to_string(n);
    return "uint8 [" + text + "] in " + npy_.path;
  }
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
  NpyTrainSet(ImageStack images, std::vector<std::int64_t> labels)
      : images_(std::move(images)), labels_(std::move(labels)) {
    for (auto y : labels_) {
      if (y < 0) throw RuntimeError("npy-stack: a label is negative (" + std::to_string(y) + ")");
      classes_ = std::max(classes_, y + 1);
    }
  }
  std::size_t size() const override { return labels_.size(); }
  std::int64_t num_classes() const override { return classes_; }
  flatface::Sample get(std::size_t i) const override { return {images_.image(i), labels_.at(i)}; }
  std::string describe() const override {
    return "npy-stack: " + std::to_string(size()) + " images, " + std::to_string(classes_) +
           " identities";
  }
  std::string details(std::size_t) const override { return "array:  " + images_.shape() + "\n"; }

 private:
  ImageStack images_;
  std::vector<std::int64_t> labels_;
  std::int64_t classes_ = 0;
};

std::shared_ptr<flatface::TrainSet> make_train_set(const flatface::DatasetArgs& args) {
  auto [stack, labels_npy] = open_stack(args, "labels");
  ImageStack images(std::move(stack));
  std::vector<std::int64_t> labels = integers(labels_npy);
  if (labels.size() != images.size()) {
    throw RuntimeError("npy-stack: " + std::to_string(images.size()) + " images but " +
                       std::to_string(labels.size()) + " labels");
  }
  return std::make_shared<NpyTrainSet>(std::move(images), std::move(labels));
}

std::shared_ptr<flatface::VerificationSet> make_pairs(const flatface::DatasetArgs& args) {
  auto [stack, issame_npy] = open_stack(args, "issame");
  ImageStack images(std::move(stack));
  std::vector<std::int64_t> same = integers(issame_npy);
  if (images.size() != 2 * same.size()) {
    throw RuntimeError("npy-stack: " + std::to_string(same.size()) + " pairs need " +
                       std::to_string(2 * same.size()) + " images, not " +
                       std::to_string(images.size()));
  }
  auto decoded =
      flatface::datasets::decode_all(images.size(), [&](std::size_t i) { return images.image(i); });
  return std::make_shared<flatface::datasets::DecodedPairs>(
      std::move(decoded), std::vector<bool>(same.begin(), same.end()),
      "npy-stack: " + std::to_string(same.size()) + " pairs");
}

}  // namespace

FLATFACE_PLUGIN(flatface::dataset_entry("npy-stack",
                                        "numpy image stacks (uint8 [N,H,W,3]) with labels or pairs",
                                        &make_train_set, &make_pairs, &recognise,
                                        "*.npy image stacks beside STEM.labels.npy (training set) "
                                        "or STEM.issame.npy (pairs)"))
