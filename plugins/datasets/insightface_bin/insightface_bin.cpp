// `insightface-bin`: an insightface verification file (lfw.bin, cfp_fp.bin, agedb_30.bin, ...).
// Recognises *.bin files given on the command line.
//
// Options: path (the .bin file, relative to the experiment file) and preload (true: decode every
// image once, in parallel, when the set is opened; false: keep the encoded bytes and decode on
// each access, for large files on small machines).
#include <algorithm>
#include <filesystem>

#include "flatface/decoded_pairs.hpp"
#include "flatface/formats/verification_bin.hpp"
#include "flatface/image_codec.hpp"
#include "flatface/image_tally.hpp"
#include "flatface/plugin.hpp"

namespace flatface::datasets {
namespace {

Image decode_entry(const VerificationBin& bin, const std::string& path, std::size_t i) {
  try {
    return decode_image(bin.images[i]);
  } catch (const RuntimeError& e) {
    throw RuntimeError(path + ": image " + std::to_string(i) + " (pair " + std::to_string(i / 2) +
                       "): " + e.what());
  }
}

// The pickle's layout and the encoded images' formats and sizes, read from their headers.
std::string bin_details(const VerificationBin& bin) {
  ImageTally tally;
  for (const auto& img : bin.images) tally.add(img.data(), img.size());
  const auto same =
      static_cast<std::size_t>(std::count(bin.issame.begin(), bin.issame.end(), true));
  return "format: " + bin.format + "\npairs:  " + std::to_string(bin.issame.size()) + " (" +
         std::to_string(same) + " same, " + std::to_string(bin.issame.size() - same) +
         " different)\nimages: " + std::to_string(bin.images.size()) + "; " + tally.formats() +
         "\nsizes:  " + tally.sizes() + "\n";
}

class LazyBinPairs final : public VerificationSet {
 public:
  LazyBinPairs(VerificationBin bin, std::string path)
      : bin_(std::move(bin)), path_(std::move(path)) {}
  std::size_t num_pairs() const override { return bin_.issame.size(); }
  Image image(std::size_t index) const override {
    if (index >= bin_.images.size())
      throw RuntimeError(path_ + ": image " + std::to_string(index) + " out of range");
    return decode_entry(bin_, path_, index);
  }
  const std::vector<bool>& issame() const override { return bin_.issame; }
  std::string describe() const override {
    return "insightface-bin " + path_ + ": " + std::to_string(num_pairs()) + " pairs (" +
           bin_.format + ", decoded on access)";
  }
  std::string details(std::size_t) const override { return bin_details(bin_); }

 private:
  VerificationBin bin_;
  std::string path_;
};

PathRecognition recognise(const PathProbe& p) {
  return PathRecognition{false,
                         !p.is_directory && std::filesystem::path(p.path).extension() == ".bin"};
}

std::shared_ptr<VerificationSet> make_verification_set(const DatasetArgs& args) {
  namespace fs = std::filesystem;
  fs::path path = args.options.require_string("path");
  if (path.is_relative()) path = fs::path(args.base_dir) / path;
  bool preload = args.options.get_bool("preload", true);
  if (!fs::is_regular_file(path))
    throw ConfigError(args.options.pos_of("path").str() + ": dataset 'insightface-bin': '" +
                      path.string() + "' is not a file (expected an insightface .bin)");
  VerificationBin bin = read_verification_bin(path.string());
  if (!preload) return std::make_shared<LazyBinPairs>(std::move(bin), path.string());
  std::vector<Image> images = decode_all(
      bin.images.size(), [&](std::size_t i) { return decode_entry(bin, path.string(), i); });
  std::string description = "insightface-bin " + path.string() + ": " +
                            std::to_string(bin.issame.size()) + " pairs (" + bin.format + ")";
  std::string details = bin_details(bin);
  return std::make_shared<DecodedPairs>(std::move(images), std::move(bin.issame), description,
                                        details);
}

}  // namespace
}  // namespace flatface::datasets

FLATFACE_PLUGIN(flatface::dataset_entry("insightface-bin",
                                        "insightface verification .bin (pickled image pairs)",
                                        nullptr, &flatface::datasets::make_verification_set,
                                        &flatface::datasets::recognise,
                                        "*.bin files (verification pairs)"))
