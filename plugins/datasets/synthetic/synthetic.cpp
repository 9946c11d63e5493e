// `synthetic`: procedurally drawn face-like identities, as a training set and as verification
// pairs, for runs that need no data on disk.
//
// Options (the same table works for both roles): seed (0; the data's own seed, not the run's, so
// every run of a grid sees the same images), identities (100 training identities),
// images_per_identity (20), verification_identities (50), pairs (600, alternately same and
// different), size (rendering side, default the input size), nuisance (0.5: intra-class
// variation) and spread (1.0: how far identities lie apart). Training and verification identities
// come from separate key streams, so the verification set is open-set. Training images are kept in
// memory after their first rendering (up to 1 GiB per set); verification pairs are rendered up
// front.
#include <algorithm>
#include <cstdint>
#include <mutex>
#include <sstream>

#include "face_renderer.hpp"
#include "flatface/decoded_pairs.hpp"
#include "flatface/plugin.hpp"

namespace flatface::datasets {
namespace {

using synthetic::Identity;
using synthetic::key;

// Separate streams keep training and verification identities disjoint.
constexpr std::uint64_t kTrainStream = 0x747261696e;             // "train"
constexpr std::uint64_t kVerificationStream = 0x766572696679;    // "verify"
constexpr std::uint64_t kSampleOffset = std::uint64_t{1} << 40;  // sample keys, apart from ids
constexpr std::uint64_t kPairStream = 0x7061697273;              // "pairs"

struct Settings {
  std::uint64_t seed = 0;
  std::int64_t identities = 100;
  std::int64_t images_per_identity = 20;
  std::int64_t verification_identities = 50;
  std::int64_t pairs = 600;
  std::int64_t size = 112;
  double nuisance = 0.5;
  double spread = 1.0;
};

std::int64_t at_least(const Options& o, const std::string& k, std::int64_t fallback,
                      std::int64_t minimum) {
  std::int64_t v = o.get_int(k, fallback);
  if (v < minimum)
    throw ConfigError(o.pos_of(k).str() + ": dataset 'synthetic': " + k + " must be at least " +
                      std::to_string(minimum) + ", got " + std::to_string(v));
  return v;
}

double in_range(const Options& o, const std::string& k, double fallback, double lo, double hi) {
  double v = o.get_double(k, fallback);
  if (!(v >= lo && v <= hi)) {
    std::ostringstream msg;
    msg << o.pos_of(k).str() << ": dataset 'synthetic': " << k << " must be in [" << lo << ", "
        << hi << "], got " << v;
    throw ConfigError(msg.str());
  }
  return v;
}

// Both roles read every key, so one table can configure the training and the verification set.
Settings read_settings(const DatasetArgs& args) {
  const Options& o = args.options;
  Settings s;
  s.seed = static_cast<std::uint64_t>(o.get_int("seed", 0));
  s.identities = at_least(o, "identities", 100, 1);
  s.images_per_identity = at_least(o, "images_per_identity", 20, 1);
  s.verification_identities = at_least(o, "verification_identities", 50, 2);
  s.pairs = at_least(o, "pairs", 600, 2);
  s.size = at_least(o, "size", args.input_size, 8);
  if (s.size > 1024)
    throw ConfigError(o.pos_of("size").str() + ": dataset 'synthetic': size must be at most 1024");
  s.nuisance = in_range(o, "nuisance", 0.5, 0.0, 2.0);
  s.spread = in_range(o, "spread", 1.0, 0.0, 2.0);
  return s;
}

std::vector<Identity> identities(const Settings& s, std::uint64_t stream, std::int64_t count) {
  std::vector<Identity> out;
  for (std::int64_t i = 0; i < count; ++i)
    out.push_back(synthetic::make_identity(key(key(s.seed, stream), i), s.spread));
  return out;
}

// Sample `index` of identity `id` in `stream`: the template under that sample's nuisance.
Image draw(const Settings& s, const Identity& identity, std::uint64_t stream, std::int64_t id,
           std::uint64_t index) {
  std::uint64_t k = key(key(key(s.seed, stream), id), kSampleOffset + index);
  // At the rendering size: the host resizes to the backbone's input.
  return synthetic::render(identity, synthetic::make_nuisance(k, s.nuisance),
                           static_cast<int>(s.size));
}

std::string describe(const Settings& s) {
  std::ostringstream d;
  d << s.size << " px, seed " << s.seed << ", nuisance " << s.nuisance << ", spread " << s.spread;
  return d.str();
}

// Images are kept after their first rendering when the whole set fits in this many bytes:
// rendering costs more than a training step of the small backbone consumes.
constexpr std::int64_t kCacheBytes = std::int64_t{1} << 30;

class SyntheticTrainSet final : public TrainSet {
 public:
  explicit SyntheticTrainSet(Settings s)
      : s_(s),
        identities_(identities(s, kTrainStream, s.identities)),
        cached_(static_cast<std::int64_t>(size()) * s.size * s.size * 3 <= kCacheBytes),
        once_(cached_ ? size() : 0),
        cache_(cached_ ? size() : 0) {}
  std::size_t size() const override {
    return static_cast<std::size_t>(s_.identities * s_.images_per_identity);
  }
  std::int64_t num_classes() const override { return s_.identities; }
  Sample get(std::size_t index) const override {
    if (index >= size())
      throw RuntimeError("synthetic: sample " + std::to_string(index) + " out of range (size " +
                         std::to_string(size()) + ")");
    auto label = static_cast<std::int64_t>(index) / s_.images_per_identity;
    auto k = static_cast<std::uint64_t>(static_cast<std::int64_t>(index) % s_.images_per_identity);
    auto render = [&] {
      return draw(s_, identities_[static_cast<std::size_t>(label)], kTrainStream, label, k);
    };
    if (!cached_) return Sample{render(), label};
    std::call_once(once_[index], [&] { cache_[index] = render(); });
    return Sample{cache_[index], label};
  }
  std::string describe() const override {
    return "synthetic faces: " + std::to_string(s_.identities) + " identities x " +
           std::to_string(s_.images_per_identity) + " images, " + datasets::describe(s_);
  }

 private:
  Settings s_;
  std::vector<Identity> identities_;
  bool cached_;
  mutable std::vector<std::once_flag> once_;  // one per image: rendered by the first reader
  mutable std::vector<Image> cache_;
};

class SyntheticPairs final : public VerificationSet {
 public:
  explicit SyntheticPairs(Settings s)
      : s_(s), identities_(identities(s, kVerificationStream, s.verification_identities)) {
    // Same and different pairs alternate, so each contiguous fold of the 10-fold protocol is
    // balanced. Every image is a fresh sample (its own nuisance) of its identity.
    std::uint64_t state = key(s.seed, kPairStream);
    auto below = [&state](std::int64_t n) {
      state = synthetic::mix(state);
      return static_cast<std::int64_t>(state % static_cast<std::uint64_t>(n));
    };
    const std::int64_t n = s.verification_identities;
    for (std::int64_t p = 0; p < s.pairs; ++p) {
      bool same = p % 2 == 0;
      std::int64_t a = below(n);
      std::int64_t b = same ? a : (a + 1 + below(n - 1)) % n;
      owners_.push_back(a);
      owners_.push_back(b);
      issame_.push_back(same);
    }
  }
  std::size_t num_pairs() const override { return issame_.size(); }
  Image image(std::size_t index) const override {
    std::int64_t id = owners_.at(index);
    return draw(s_, identities_[static_cast<std::size_t>(id)], kVerificationStream, id, index);
  }
  const std::vector<bool>& issame() const override { return issame_; }
  std::string describe() const override {
    return "synthetic faces: " + std::to_string(num_pairs()) + " pairs of " +
           std::to_string(s_.verification_identities) + " held-out identities, " +
           datasets::describe(s_);
  }

 private:
  Settings s_;
  std::vector<Identity> identities_;
  std::vector<std::int64_t> owners_;  // the identity of each image
  std::vector<bool> issame_;
};

std::shared_ptr<TrainSet> make_train_set(const DatasetArgs& args) {
  return std::make_shared<SyntheticTrainSet>(read_settings(args));
}

// Rendered once, up front and in parallel: a grid evaluates the same pairs after every epoch of
// every run (rendering on each access made evaluation ~4x slower than reading a .bin).
std::shared_ptr<VerificationSet> make_verification_set(const DatasetArgs& args) {
  const Settings s = read_settings(args);
  SyntheticPairs pairs(s);
  auto images =
      decode_all(2 * pairs.num_pairs(), [&pairs](std::size_t i) { return pairs.image(i); });
  return std::make_shared<DecodedPairs>(std::move(images), pairs.issame(), pairs.describe());
}

}  // namespace
}  // namespace flatface::datasets

FLATFACE_PLUGIN(flatface::dataset_entry("synthetic",
                                        "procedural face-like identities (training set and pairs)",
                                        &flatface::datasets::make_train_set,
                                        &flatface::datasets::make_verification_set))
