// flatface data pairs: writes an insightface verification .bin (pickle of (images, issame)), the
// host's interchange format, from an image folder (balanced pairs drawn by seed), from an
// LFW-style pairs list, or from any verification set a dataset plugin reads (--from).
//
// --folder and --lfw-pairs read the files themselves: they store each JPEG/PNG byte for byte,
// which a plugin cannot offer (it hands out decoded pixels). --from goes through the plugin that
// recognises the path, so a format built out of tree converts too; its images are stored as PNG
// (lossless, so the .bin holds exactly the pixels the plugin decoded).
#include <algorithm>
#include <iostream>
#include <map>
#include <set>
#include <utility>

#include "common.hpp"
#include "data/dataset_recognition.hpp"
#include "flatface/formats/image_folder.hpp"
#include "flatface/formats/lfw_pairs.hpp"
#include "flatface/formats/verification_bin.hpp"
#include "flatface/image_codec.hpp"
#include "flatface/sample_order.hpp"
#include "plugin_host/factory.hpp"

namespace flatface::cli {
namespace {

struct PairsArgs {
  std::string folder, lfw_pairs, root, from, dataset, out;
  std::int64_t count = 600;
  std::uint64_t seed = 0;
};
PairsArgs pairs_args;

// SplitMix64 (sample_order.hpp): the same draws for the same seed on every platform.
using Rng = SplitMix64;

using Pair = std::pair<std::string, std::string>;

// `wanted` distinct pairs from `draw`; when they are more than half of the `possible` ones, all
// candidates are enumerated and a shuffled prefix taken instead, so sampling always terminates.
template <typename Draw, typename All>
std::vector<Pair> distinct_pairs(std::size_t wanted, double possible, Rng& rng, Draw draw,
                                 All all) {
  std::vector<Pair> out;
  if (static_cast<double>(wanted) * 2 > possible) {
    std::vector<Pair> every = all();
    for (std::size_t i = every.size(); i > 1; --i) std::swap(every[i - 1], every[rng.below(i)]);
    every.resize(wanted);
    return every;
  }
  std::set<Pair> seen;
  while (out.size() < wanted) {
    Pair p = draw();
    if (seen.insert(std::minmax(p.first, p.second)).second) out.push_back(p);
  }
  return out;
}

// Same and different pairs alternate (same first), so each contiguous fold is balanced.
std::pair<std::vector<std::string>, std::vector<bool>> folder_pairs(const ImageFolderListing& l,
                                                                    std::size_t count,
                                                                    std::uint64_t seed) {
  const auto& images = l.images;
  std::vector<std::size_t> multi;
  double same_possible = 0, total = 0, squares = 0;
  for (std::size_t i = 0; i < images.size(); ++i) {
    auto n = static_cast<double>(images[i].size());
    if (images[i].size() >= 2) multi.push_back(i);
    same_possible += n * (n - 1) / 2;
    total += n;
    squares += n * n;
  }
  const double different_possible = (total * total - squares) / 2;
  const std::size_t n_same = (count + 1) / 2, n_different = count / 2;
  if (static_cast<double>(n_same) > same_possible ||
      static_cast<double>(n_different) > different_possible) {
    throw ConfigError("--count " + std::to_string(count) + ": folder '" + l.root + "' allows " +
                      std::to_string(static_cast<long long>(same_possible)) + " same and " +
                      std::to_string(static_cast<long long>(different_possible)) +
                      " different pairs; need " + std::to_string(n_same) + " and " +
                      std::to_string(n_different));
  }
  Rng rng(seed);
  std::vector<Pair> same = distinct_pairs(
      n_same, same_possible, rng,
      [&] {
        const auto& files = images[multi[rng.below(multi.size())]];
        std::size_t a = rng.below(files.size()), b = rng.below(files.size() - 1);
        if (b >= a) ++b;
        return Pair{files[a], files[b]};
      },
      [&] {
        std::vector<Pair> all;
        for (const auto& files : images)
          for (std::size_t a = 0; a < files.size(); ++a)
            for (std::size_t b = a + 1; b < files.size(); ++b) all.emplace_back(files[a], files[b]);
        return all;
      });
  std::vector<Pair> different = distinct_pairs(
      n_different, different_possible, rng,
      [&] {
        std::size_t a = rng.below(images.size()), b = rng.below(images.size() - 1);
        if (b >= a) ++b;
        return Pair{images[a][rng.below(images[a].size())], images[b][rng.below(images[b].size())]};
      },
      [&] {
        std::vector<Pair> all;
        for (std::size_t a = 0; a < images.size(); ++a)
          for (std::size_t b = a + 1; b < images.size(); ++b)
            for (const auto& fa : images[a])
              for (const auto& fb : images[b]) all.emplace_back(fa, fb);
        return all;
      });
  std::vector<std::string> files;
  std::vector<bool> issame;
  for (std::size_t p = 0; p < count; ++p) {
    const Pair& pair = p % 2 == 0 ? same[p / 2] : different[p / 2];
    files.push_back(pair.first);
    files.push_back(pair.second);
    issame.push_back(p % 2 == 0);
  }
  return {files, issame};
}

// JPEG and PNG bytes are stored as they are; PGM/PPM become PNG (insightface decodes with
// cv2/mxnet imdecode, which expect JPEG or PNG).
std::vector<std::uint8_t> stored_bytes(const std::string& file, int* reencoded) {
  std::vector<std::uint8_t> bytes = read_file_bytes(file);
  ImageFormat format = sniff_image_format(bytes.data(), bytes.size());
  if (format == ImageFormat::jpeg || format == ImageFormat::png) return bytes;
  if (format == ImageFormat::pgm || format == ImageFormat::ppm) {
    ++*reencoded;
    try {
      return encode_png(decode_image(bytes));
    } catch (const RuntimeError& e) {
      throw RuntimeError(file + ": " + e.what());
    }
  }
  throw RuntimeError(file + ": not a JPEG, PNG, PGM or PPM image");
}

// The pairs of a verification set a dataset plugin reads, every image stored as PNG.
int convert_pairs(const Globals& g, const PairsArgs& a) {
  auto reg = open_registry(g);
  PluginRef ref = recognised_ref(*reg, a.from, DataRole::verification, a.dataset);
  // No backbone here: procedural data is drawn at the default 112 side.
  auto set = make_verification_set(*reg, ref, 112, 0);
  VerificationBin bin;
  bin.issame = set->issame();
  for (std::size_t i = 0; i < 2 * set->num_pairs(); ++i)
    bin.images.push_back(encode_png(set->image(i)));
  write_verification_bin(a.out, bin);
  const auto same =
      static_cast<std::size_t>(std::count(bin.issame.begin(), bin.issame.end(), true));
  std::cout << a.out << ": " << bin.issame.size() << " pairs (" << same << " same, "
            << bin.issame.size() - same << " different) from " << set->describe() << " (plugin '"
            << ref.plugin << "'); " << bin.images.size() << " images stored as PNG\n";
  return 0;
}

int make_pairs(const PairsArgs& a) {
  std::vector<std::string> files;
  VerificationBin bin;
  std::string source;
  if (!a.folder.empty()) {
    if (a.count < 2) throw ConfigError("--count must be at least 2");
    ImageFolderListing listing = list_image_folder(a.folder);
    std::tie(files, bin.issame) = folder_pairs(listing, static_cast<std::size_t>(a.count), a.seed);
    source = "folder " + a.folder + " (seed " + std::to_string(a.seed) + ")";
  } else {
    PairFiles list = read_pairs_file(a.lfw_pairs, a.root);
    files = std::move(list.files);
    bin.issame = std::move(list.issame);
    source = a.lfw_pairs + " over " + a.root;
  }
  int reencoded = 0;
  std::map<std::string, std::size_t> first_use;  // a file used twice is read once
  for (const auto& f : files) {
    auto it = first_use.find(f);
    if (it != first_use.end()) {
      bin.images.push_back(bin.images[it->second]);
    } else {
      first_use[f] = bin.images.size();
      bin.images.push_back(stored_bytes(f, &reencoded));
    }
  }
  write_verification_bin(a.out, bin);
  std::size_t same =
      static_cast<std::size_t>(std::count(bin.issame.begin(), bin.issame.end(), true));
  std::cout << a.out << ": " << bin.issame.size() << " pairs (" << same << " same, "
            << bin.issame.size() - same << " different) from " << source << "; " << first_use.size()
            << " distinct images, " << reencoded << " re-encoded to PNG\n";
  return 0;
}

}  // namespace

void data_pairs_options(CLI::App& cmd) {
  auto* folder =
      cmd.add_option("--folder", pairs_args.folder, "Image folder root/<identity>/<image>")
          ->check(CLI::ExistingDirectory);
  auto* count =
      cmd.add_option("--count", pairs_args.count, "Pairs to draw from --folder (half same)")
          ->capture_default_str();
  auto* seed =
      cmd.add_option("--seed", pairs_args.seed, "Seed of the pair draw")->capture_default_str();
  auto* lfw = cmd.add_option("--lfw-pairs", pairs_args.lfw_pairs,
                             "LFW pairs.txt (or 'path1 path2 0|1' lines)")
                  ->check(CLI::ExistingFile);
  auto* root = cmd.add_option("--root", pairs_args.root, "Image root for --lfw-pairs")
                   ->check(CLI::ExistingDirectory);
  auto* from = cmd.add_option("--from", pairs_args.from,
                              "Any verification set a dataset plugin reads (a file or folder); "
                              "images stored as PNG")
                   ->check(CLI::ExistingPath);
  auto* dataset =
      cmd.add_option("--dataset", pairs_args.dataset,
                     "The dataset plugin for --from (default: the one that recognises it)");
  cmd.add_option("out", pairs_args.out, "Output .bin file")->required();
  count->needs(folder);
  seed->needs(folder);
  lfw->needs(root);
  root->needs(lfw);
  dataset->needs(from);
  folder->excludes(lfw);
  from->excludes(folder);
  from->excludes(lfw);
  cmd.callback([folder, lfw, from] {
    if (folder->count() == 0 && lfw->count() == 0 && from->count() == 0)
      throw CLI::ValidationError("data pairs",
                                 "give --folder DIR, --lfw-pairs FILE --root DIR, or --from PATH");
  });
}

int data_pairs_command(const Globals& g) {
  return pairs_args.from.empty() ? make_pairs(pairs_args) : convert_pairs(g, pairs_args);
}

}  // namespace flatface::cli
