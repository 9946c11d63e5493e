// `lfw-pairs`: verification pairs listed in an LFW-style pairs.txt over an image folder.
//
// Options: root (the image folder: root/<name>/<name>_NNNN.jpg) and pairs (the list; LFW's
// pairs.txt or a "path1 path2 0|1" list, see formats/lfw_pairs.hpp); both relative to the
// experiment file. All images are decoded once, in parallel, when the set is opened. Claims no
// command-line path (it needs two).
#include "flatface/formats/lfw_pairs.hpp"

#include <filesystem>

#include "flatface/decoded_pairs.hpp"
#include "flatface/image_codec.hpp"
#include "flatface/plugin.hpp"

namespace flatface::datasets {
namespace {

std::filesystem::path resolve(const DatasetArgs& args, const std::string& key) {
  std::filesystem::path p = args.options.require_string(key);
  return p.is_relative() ? std::filesystem::path(args.base_dir) / p : p;
}

std::shared_ptr<VerificationSet> make_verification_set(const DatasetArgs& args) {
  namespace fs = std::filesystem;
  fs::path root = resolve(args, "root");
  fs::path pairs = resolve(args, "pairs");
  if (!fs::is_directory(root))
    throw ConfigError(args.options.pos_of("root").str() + ": dataset 'lfw-pairs': '" +
                      root.string() + "' is not a folder (expected root/<name>/<image>)");
  if (!fs::is_regular_file(pairs))
    throw ConfigError(args.options.pos_of("pairs").str() + ": dataset 'lfw-pairs': '" +
                      pairs.string() + "' is not a file (expected an LFW pairs.txt)");
  PairFiles list = read_pairs_file(pairs.string(), root.string());
  std::vector<Image> images =
      decode_all(list.files.size(), [&](std::size_t i) { return load_image_file(list.files[i]); });
  std::string description = "lfw-pairs " + pairs.string() + ": " +
                            std::to_string(list.issame.size()) + " pairs from " + root.string();
  return std::make_shared<DecodedPairs>(std::move(images), std::move(list.issame), description);
}

}  // namespace
}  // namespace flatface::datasets

FLATFACE_PLUGIN(flatface::dataset_entry("lfw-pairs",
                                        "verification pairs from an LFW pairs.txt over a folder",
                                        nullptr, &flatface::datasets::make_verification_set))
