// `image-folder`: root/<identity>/<image> as a training set and as verification pairs.
//
// Options: path (the root), split = "all" | "train" | "verification" with verification_fraction
// (0.2) and seed (0) choosing a disjoint set of held-out identities, and pairs (300) for a
// verification set. The split uses its own `seed` option, not the run's seed, so that a training
// set and a verification set configured alike always hold disjoint identities. Given a path on the
// command line, it recognises a folder that has subfolders, as a training set and as pairs.
#include "flatface/formats/image_folder.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <utility>

#include "flatface/image_codec.hpp"
#include "flatface/image_tally.hpp"
#include "flatface/plugin.hpp"
#include "flatface/sample_order.hpp"

namespace flatface::datasets {
namespace {

// SplitMix64 (sample_order.hpp): the same draws for the same seed on every platform.
using Rng = SplitMix64;

// The identities (indices into the listing, in name order) that `split` selects.
std::vector<std::size_t> select_identities(const ImageFolderListing& listing, const Options& o) {
  const std::string split = o.get_choice("split", "all", {"all", "train", "verification"});
  const double fraction = o.get_double("verification_fraction", 0.2);
  const std::uint64_t seed = static_cast<std::uint64_t>(o.get_int("seed", 0));
  const std::size_t count = listing.identities.size();
  std::vector<std::size_t> all(count);
  for (std::size_t i = 0; i < count; ++i) all[i] = i;
  if (split == "all") return all;
  if (!(fraction > 0 && fraction < 1)) {
    throw ConfigError(o.pos_of("verification_fraction").str() +
                      ": verification_fraction must be in (0, 1), got " + std::to_string(fraction));
  }
  // Fisher-Yates over the name-ordered identities; the first round(fraction * C) are held out.
  std::vector<std::size_t> order = all;
  Rng rng(seed);
  for (std::size_t i = count; i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  const auto held_out =
      static_cast<std::size_t>(std::lround(fraction * static_cast<double>(count)));
  if (held_out < 2 || held_out >= count) {
    throw ConfigError(o.pos_of("verification_fraction").str() + ": verification_fraction " +
                      std::to_string(fraction) + " of " + std::to_string(count) +
                      " identities holds out " + std::to_string(held_out) +
                      "; need at least 2 held out and 1 left for training");
  }
  std::set<std::size_t> verification(order.begin(), order.begin() + held_out);
  std::vector<std::size_t> chosen;
  for (std::size_t i : all) {
    if ((split == "verification") == (verification.count(i) == 1)) chosen.push_back(i);
  }
  return chosen;  // in name order, so labels follow folder names
}

std::string resolve_root(const DatasetArgs& args) {
  namespace fs = std::filesystem;
  fs::path path = args.options.require_string("path");
  if (path.is_relative()) path = fs::path(args.base_dir) / path;
  if (!fs::is_directory(path)) {
    throw ConfigError(args.options.pos_of("path").str() + ": dataset 'image-folder': '" +
                      path.string() + "' is not a folder (expected root/<identity>/<image>)");
  }
  return path.string();
}

// A folder with at least one subfolder (an identity); insightface's train.rec folders have none.
PathRecognition recognise(const PathProbe& p) {
  namespace fs = std::filesystem;
  if (!p.is_directory) return {};
  std::error_code error;
  for (fs::directory_iterator it(p.path, error), end; !error && it != end; it.increment(error)) {
    if (it->is_directory(error)) return PathRecognition{true, true};
  }
  return {};
}

class FolderTrainSet final : public TrainSet {
 public:
  FolderTrainSet(const ImageFolderListing& listing, const std::vector<std::size_t>& identities)
      : root_(listing.root), classes_(static_cast<std::int64_t>(identities.size())) {
    for (std::size_t label = 0; label < identities.size(); ++label) {
      names_.push_back(listing.identities[identities[label]]);
      for (const auto& f : listing.images[identities[label]]) {
        samples_.emplace_back(f, static_cast<std::int64_t>(label));
      }
    }
  }
  std::size_t size() const override { return samples_.size(); }
  std::int64_t num_classes() const override { return classes_; }
  Sample get(std::size_t index) const override {
    const auto& [file, label] = samples_.at(index);
    return Sample{load_image_file(file), label};  // at its stored size: the host resizes
  }
  std::string describe() const override {
    return "image-folder " + root_ + ": " + std::to_string(samples_.size()) + " images, " +
           std::to_string(classes_) + " identities";
  }
  // Formats and sizes from each file's header, without decoding.
  std::string details(std::size_t limit) const override {
    const std::size_t n = limit ? std::min(limit, samples_.size()) : samples_.size();
    ImageTally tally;
    std::vector<std::size_t> counts(static_cast<std::size_t>(classes_), 0);
    for (const auto& [file, label] : samples_) ++counts[static_cast<std::size_t>(label)];
    std::string warnings;
    for (std::size_t i = 0; i < n; ++i) {
      std::vector<std::uint8_t> bytes = read_file_bytes(samples_[i].first);
      std::string error = tally.add(bytes.data(), bytes.size());
      if (!error.empty()) warnings += "unreadable: " + samples_[i].first + ": " + error + "\n";
    }
    return "identities: " + std::to_string(classes_) +
           (names_.empty() ? "" : " (" + names_.front() + " .. " + names_.back() + ")") +
           ", labels in name order\nimages:     " + std::to_string(samples_.size()) +
           (n < samples_.size() ? " (examined " + std::to_string(n) + ")" : "") +
           "\nper class:  " + per_class_text(counts) + "\nformats:    " + tally.formats() +
           "\nsizes:      " + tally.sizes() + "\n" + warnings;
  }

 private:
  std::string root_;
  std::int64_t classes_;
  std::vector<std::string> names_;  // identity folder of each label
  std::vector<std::pair<std::string, std::int64_t>> samples_;
};

class FolderPairs final : public VerificationSet {
 public:
  FolderPairs(const ImageFolderListing& listing, const std::vector<std::size_t>& identities,
              std::size_t pairs, std::uint64_t seed)
      : root_(listing.root) {
    std::vector<std::size_t> multi;  // identities with two or more images, for "same" pairs
    for (std::size_t i : identities) {
      if (listing.images[i].size() >= 2) multi.push_back(i);
    }
    if (multi.empty() || identities.size() < 2) {
      throw RuntimeError("image folder '" + root_ +
                         "': verification pairs need at least 2 identities and one with 2 "
                         "or more images");
    }
    // Same and different pairs alternate, so every contiguous fold of the 10-fold protocol is
    // balanced. Repeated pairs are avoided while that is possible.
    Rng rng(seed ^ 0x5eedba5eull);
    std::set<std::pair<std::string, std::string>> seen;
    for (std::size_t p = 0; p < pairs; ++p) {
      const bool same = p % 2 == 0;
      std::pair<std::string, std::string> pair;
      for (int attempt = 0; attempt < 100; ++attempt) {
        if (same) {
          const auto& files = listing.images[multi[rng.below(multi.size())]];
          std::size_t a = rng.below(files.size()), b = rng.below(files.size() - 1);
          if (b >= a) ++b;
          pair = {files[a], files[b]};
        } else {
          std::size_t a = rng.below(identities.size()), b = rng.below(identities.size() - 1);
          if (b >= a) ++b;
          const auto& fa = listing.images[identities[a]];
          const auto& fb = listing.images[identities[b]];
          pair = {fa[rng.below(fa.size())], fb[rng.below(fb.size())]};
        }
        if (seen.insert(std::minmax(pair.first, pair.second)).second) break;
      }
      files_.push_back(pair.first);
      files_.push_back(pair.second);
      issame_.push_back(same);
    }
  }
  std::size_t num_pairs() const override { return issame_.size(); }
  Image image(std::size_t index) const override { return load_image_file(files_.at(index)); }
  const std::vector<bool>& issame() const override { return issame_; }
  std::string describe() const override {
    return "image-folder " + root_ + ": " + std::to_string(num_pairs()) + " pairs";
  }
  const std::vector<std::string>& files() const { return files_; }

 private:
  std::string root_;
  std::vector<std::string> files_;
  std::vector<bool> issame_;
};

std::shared_ptr<TrainSet> make_train_set(const DatasetArgs& args) {
  const std::string root = resolve_root(args);
  ImageFolderListing listing = list_image_folder(root);
  std::vector<std::size_t> identities = select_identities(listing, args.options);
  return std::make_shared<FolderTrainSet>(listing, identities);
}

std::shared_ptr<VerificationSet> make_verification_set(const DatasetArgs& args) {
  const std::string root = resolve_root(args);
  ImageFolderListing listing = list_image_folder(root);
  std::vector<std::size_t> identities = select_identities(listing, args.options);
  const std::int64_t pairs = args.options.get_int("pairs", 300);
  if (pairs < 2) {
    throw ConfigError(args.options.pos_of("pairs").str() + ": pairs must be at least 2, got " +
                      std::to_string(pairs));
  }
  const auto seed = static_cast<std::uint64_t>(args.options.get_int("seed", 0));
  return std::make_shared<FolderPairs>(listing, identities, static_cast<std::size_t>(pairs), seed);
}

}  // namespace
}  // namespace flatface::datasets

FLATFACE_PLUGIN(flatface::dataset_entry("image-folder",
                                        "root/<identity>/<image> folder: training set or pairs",
                                        &flatface::datasets::make_train_set,
                                        &flatface::datasets::make_verification_set,
                                        &flatface::datasets::recognise,
                                        "folders of root/<identity>/<image> (training set, "
                                        "pairs)"))
