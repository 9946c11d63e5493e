// The training batch loader: order, augmentation, normalisation, errors, resume, throughput.
#include <ATen/ops/allclose.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/full.h>
#include <ATen/TensorIndexing.h>
#include <ATen/ops/tensor.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <stdexcept>
#include <thread>
#include <tuple>

#include "catch_compat.hpp"
#include "plugin_host/factory.hpp"
#include "flatface/image_codec.hpp"
#include "flatface/sample_order.hpp"
#include "data/loader.hpp"

using catch_compat::Contains;
using flatface::Batch;
using flatface::Image;
using flatface::Loader;
using flatface::LoaderOptions;
using flatface::Sample;

namespace {

// Pixel (y, x, c) of sample i: a left-right asymmetric pattern different for every sample.
std::uint8_t pattern(std::size_t i, int y, int x, int c) {
  return static_cast<std::uint8_t>((i * 37 + y * 3 + x * 17 + c * 101) % 256);
}

Image pattern_image(std::size_t i, int height, int width) {
  Image im{height, width, std::vector<std::uint8_t>(static_cast<std::size_t>(height) * width * 3)};
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c) im.pixels[(y * width + x) * 3 + c] = pattern(i, y, x, c);
  return im;
}

// Sample i has label i, so a batch's labels say which samples it holds.
class PatternSet : public flatface::TrainSet {
 public:
  PatternSet(std::size_t n, int side) : n_(n), side_(side) {}
  std::size_t size() const override { return n_; }
  std::int64_t num_classes() const override { return static_cast<std::int64_t>(n_); }
  Sample get(std::size_t i) const override {
    if (fail_at_ == i) throw flatface::RuntimeError("record " + std::to_string(i) + " is corrupt");
    if (delay_ms_) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    return {pattern_image(i, side_, side_), static_cast<std::int64_t>(i) + label_offset_};
  }
  std::string describe() const override { return "pattern set"; }

  std::size_t fail_at_ = static_cast<std::size_t>(-1);
  int delay_ms_ = 0;
  std::int64_t label_offset_ = 0;

 private:
  std::size_t n_;
  int side_;
};

LoaderOptions options(std::int64_t batch, std::int64_t side, std::uint64_t seed = 7,
                      int threads = 2) {
  LoaderOptions o;
  o.batch_size = batch;
  o.input_size = side;
  o.seed = seed;
  o.threads = threads;
  return o;
}

std::vector<Batch> whole_epoch(Loader& loader, std::int64_t epoch, std::int64_t skip = 0) {
  loader.start_epoch(epoch, skip);
  std::vector<Batch> out;
  while (auto b = loader.next()) out.push_back(*b);
  return out;
}

std::vector<std::int64_t> labels_of(const std::vector<Batch>& batches) {
  std::vector<std::int64_t> out;
  for (const auto& b : batches)
    for (std::int64_t i = 0; i < b.labels.size(0); ++i)
      out.push_back(b.labels[i].item<std::int64_t>());
  return out;
}

// Sample i as the loader should deliver it: (x/255 - 0.5)/0.5 in CHW, mirrored when `flip`.
at::Tensor expected_row(std::size_t i, int side, bool flip) {
  std::vector<float> v;
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < side; ++y)
      for (int x = 0; x < side; ++x)
        v.push_back((pattern(i, y, flip ? side - 1 - x : x, c) / 255.0f - 0.5f) / 0.5f);
  return at::tensor(v).reshape({3, side, side});
}

}  // namespace

CATCH_TEST_CASE("an epoch holds floor(n / batch) batches and every kept sample exactly once") {
  auto data = std::make_shared<PatternSet>(23, 4);
  Loader loader(data, options(5, 4));
  CATCH_CHECK(loader.batches_per_epoch() == 4);
  auto batches = whole_epoch(loader, 0);
  CATCH_REQUIRE(batches.size() == 4);
  for (const auto& b : batches) {
    CATCH_CHECK(b.images.sizes() == at::IntArrayRef{5, 3, 4, 4});
    CATCH_CHECK(b.images.scalar_type() == at::kFloat);
    CATCH_CHECK(b.labels.scalar_type() == at::kLong);
  }
  auto labels = labels_of(batches);
  std::set<std::int64_t> distinct(labels.begin(), labels.end());
  CATCH_CHECK(distinct.size() == 20);
  CATCH_CHECK(*distinct.begin() >= 0);
  CATCH_CHECK(*distinct.rbegin() < 23);
  CATCH_CHECK(!loader.next().has_value());  // stays at the end
}

CATCH_TEST_CASE("the order is a pure function of seed and epoch, whatever the thread count") {
  auto data = std::make_shared<PatternSet>(40, 4);
  Loader one(data, options(8, 4, 11, 1)), three(data, options(8, 4, 11, 3));
  auto a = whole_epoch(one, 2), b = whole_epoch(three, 2);
  CATCH_REQUIRE(a.size() == b.size());
  for (std::size_t k = 0; k < a.size(); ++k) {
    CATCH_CHECK(at::equal(a[k].labels, b[k].labels));
    CATCH_CHECK(at::equal(a[k].images, b[k].images));
  }
  // and it is exactly epoch_permutation(n, seed, epoch), cut into batches
  auto perm = flatface::epoch_permutation(40, 11, 2);
  auto labels = labels_of(a);
  CATCH_CHECK(
      std::equal(labels.begin(), labels.end(), perm.begin(),
                 [](std::int64_t l, std::size_t p) { return l == static_cast<std::int64_t>(p); }));
}

CATCH_TEST_CASE("a view of a batch kept by the caller is never overwritten by later batches") {
  auto data = std::make_shared<PatternSet>(64, 3);
  auto o = options(4, 3, 2);
  o.flip = false;
  Loader loader(data, o);
  loader.start_epoch(0);
  std::vector<std::pair<at::Tensor, at::Tensor>> kept;  // first row of each batch, and its label
  while (auto b = loader.next())
    kept.emplace_back(b->images.narrow(0, 0, 1), b->labels.narrow(0, 0, 1));
  CATCH_REQUIRE(kept.size() == 16);
  for (const auto& [image, label] : kept) {
    const auto i = static_cast<std::size_t>(label.item<std::int64_t>());
    CATCH_CHECK(at::equal(image[0], expected_row(i, 3, false)));
  }
}

CATCH_TEST_CASE("different epochs and different seeds give different orders") {
  auto data = std::make_shared<PatternSet>(40, 4);
  Loader loader(data, options(8, 4, 11));
  auto e0 = labels_of(whole_epoch(loader, 0));
  auto e1 = labels_of(whole_epoch(loader, 1));
  auto e0_again = labels_of(whole_epoch(loader, 0));
  CATCH_CHECK(e0 != e1);
  CATCH_CHECK(e0 == e0_again);
  Loader other(data, options(8, 4, 12));
  CATCH_CHECK(labels_of(whole_epoch(other, 0)) != e0);
}

CATCH_TEST_CASE("the permutation is a permutation and reproducible across calls") {
  auto p = flatface::epoch_permutation(1000, 3, 5);
  std::set<std::size_t> s(p.begin(), p.end());
  CATCH_CHECK(s.size() == 1000);
  CATCH_CHECK(*s.rbegin() == 999);
  CATCH_CHECK(p == flatface::epoch_permutation(1000, 3, 5));
  CATCH_CHECK(p != flatface::epoch_permutation(1000, 3, 6));
}

CATCH_TEST_CASE("images are CHW, normalised as (x/255 - 0.5)/0.5, and mirrored pixel-exactly") {
  // pixels (y, x) -> RGB: (0,0) = 0 255 51, (0,1) = 153 0 0, (1,0) = 255 255 255, (1,1) = 51 51 51
  Image im{2, 2, {0, 255, 51, 153, 0, 0, 255, 255, 255, 51, 51, 51}};
  // by hand: 0 -> -1, 255 -> 1, 51 -> (0.2 - 0.5)/0.5 = -0.6, 153 -> (0.6 - 0.5)/0.5 = 0.2
  at::Tensor expected = at::tensor({-1.0f, 0.2f, 1.0f, -0.6f,    // R
                                    1.0f, -1.0f, 1.0f, -0.6f,    // G
                                    -0.6f, -1.0f, 1.0f, -0.6f})  // B
                            .reshape({1, 3, 2, 2});
  at::Tensor t = flatface::images_to_tensor({im, im}, 2, {false, true});
  CATCH_CHECK(at::allclose(t.narrow(0, 0, 1), expected, 0, 1e-6));
  CATCH_CHECK(at::allclose(t.narrow(0, 1, 1), expected.flip({3}), 0, 1e-6));
  CATCH_CHECK(at::equal(flatface::images_to_tensor({im}, 2, {}), t.narrow(0, 0, 1)));
  CATCH_CHECK_THROWS_AS(flatface::images_to_tensor({im}, 2, {true, false}), flatface::RuntimeError);
}

CATCH_TEST_CASE("a BGR input reverses the channels and mean and std normalise each input channel") {
  Image im{2, 2, {0, 255, 51, 153, 0, 0, 255, 255, 255, 51, 51, 51}};  // as above
  flatface::InputFormat bgr;
  bgr.bgr = true;
  const at::Tensor rgb_input = flatface::images_to_tensor({im}, 2, {});
  // The network's channel 0 is blue: the RGB input's planes in reverse order.
  CATCH_CHECK(at::equal(flatface::images_to_tensor({im}, 2, {}, bgr), rgb_input.flip({1})));
  // AdaFace's preprocessing, ((x[:, :, ::-1] / 255) - 0.5) / 0.5, written out for pixel (0,0):
  // RGB (0, 255, 51) -> BGR (51, 255, 0) -> (-0.6, 1, -1).
  const at::Tensor first = flatface::images_to_tensor({im}, 2, {}, bgr).index({0, at::indexing::Slice(), 0, 0});
  CATCH_CHECK(at::allclose(first, at::tensor({-0.6f, 1.0f, -1.0f}), 0, 1e-6));

  // torchvision-style per-channel statistics, by hand for pixel (0,1) = RGB (153, 0, 0):
  // (0.6 - 0.485)/0.229, (0 - 0.456)/0.224, (0 - 0.406)/0.225.
  flatface::InputFormat imagenet;
  imagenet.mean = {0.485f, 0.456f, 0.406f};
  imagenet.std = {0.229f, 0.224f, 0.225f};
  const at::Tensor px = flatface::images_to_tensor({im}, 2, {}, imagenet).index({0, at::indexing::Slice(), 0, 1});
  CATCH_CHECK(at::allclose(px, at::tensor({(0.6f - 0.485f) / 0.229f, -0.456f / 0.224f, -0.406f / 0.225f}), 0, 1e-5));
}

CATCH_TEST_CASE("the loader builds its batches in the backbone's input format") {
  auto data = std::make_shared<PatternSet>(6, 4);
  auto o = options(3, 4);
  o.flip = false;
  o.format.bgr = true;
  Loader loader(data, o);
  for (const auto& b : whole_epoch(loader, 0)) {
    for (std::int64_t r = 0; r < 3; ++r) {
      const auto i = static_cast<std::size_t>(b.labels[r].item<std::int64_t>());
      CATCH_CHECK(at::equal(b.images[r], expected_row(i, 4, false).flip({0})));
    }
  }
}

CATCH_TEST_CASE("about half of the samples are mirrored, each decided by (seed, epoch, index)") {
  const int side = 4;
  auto data = std::make_shared<PatternSet>(1000, side);
  Loader loader(data, options(100, side, 5));
  auto batches = whole_epoch(loader, 3);
  std::size_t flipped = 0, total = 0;
  for (const auto& b : batches) {
    for (std::int64_t r = 0; r < b.labels.size(0); ++r) {
      const auto i = static_cast<std::size_t>(b.labels[r].item<std::int64_t>());
      const bool flip = flatface::flip_sample(5, 3, i);
      // every row is its sample, exactly, mirrored iff flip_sample says so
      CATCH_REQUIRE(at::equal(b.images[r], expected_row(i, side, flip)));
      flipped += flip;
      ++total;
    }
  }
  CATCH_CHECK(total == 1000);
  // 1000 fair coins: 500 +- 16 (one sd); the range is 6 sd wide on each side
  CATCH_CHECK(flipped > 400);
  CATCH_CHECK(flipped < 600);
  // the coin of a sample does not depend on where it lands: another batch size, same flips
  Loader other(data, options(40, side, 5, 3));
  for (const auto& b : whole_epoch(other, 3))
    for (std::int64_t r = 0; r < b.labels.size(0); ++r) {
      const auto i = static_cast<std::size_t>(b.labels[r].item<std::int64_t>());
      CATCH_REQUIRE(at::equal(b.images[r], expected_row(i, side, flatface::flip_sample(5, 3, i))));
    }
}

CATCH_TEST_CASE("with flip off no sample is mirrored") {
  auto data = std::make_shared<PatternSet>(50, 3);
  auto o = options(10, 3, 5);
  o.flip = false;
  Loader loader(data, o);
  for (const auto& b : whole_epoch(loader, 0))
    for (std::int64_t r = 0; r < b.labels.size(0); ++r)
      CATCH_REQUIRE(at::equal(
          b.images[r],
          expected_row(static_cast<std::size_t>(b.labels[r].item<std::int64_t>()), 3, false)));
}

CATCH_TEST_CASE("images of another size are resized to the input size") {
  // a uniform image stays uniform under bilinear resizing: 51 -> -0.6 everywhere
  class Uniform : public flatface::TrainSet {
   public:
    std::size_t size() const override { return 4; }
    std::int64_t num_classes() const override { return 1; }
    Sample get(std::size_t) const override {
      return {Image{7, 5, std::vector<std::uint8_t>(7 * 5 * 3, 51)}, 0};
    }
    std::string describe() const override { return "uniform"; }
  };
  auto o = options(2, 6);
  o.flip = false;
  Loader loader(std::make_shared<Uniform>(), o);
  auto batches = whole_epoch(loader, 0);
  CATCH_REQUIRE(batches.size() == 2);
  CATCH_CHECK(batches[0].images.sizes() == at::IntArrayRef{2, 3, 6, 6});
  CATCH_CHECK(at::allclose(batches[0].images, at::full({2, 3, 6, 6}, -0.6f), 0, 1e-6));
  // and a non-uniform one equals the image codec's resize, normalised
  Image big = pattern_image(3, 9, 9);
  at::Tensor direct = flatface::images_to_tensor({big}, 4, {false});
  at::Tensor via_resize = flatface::images_to_tensor({flatface::resize(big, 4)}, 4, {false});
  CATCH_CHECK(at::equal(direct, via_resize));
}

CATCH_TEST_CASE("skipping batches resumes the same epoch order where it stopped") {
  auto data = std::make_shared<PatternSet>(60, 3);
  Loader loader(data, options(7, 3, 9));
  auto full = whole_epoch(loader, 4);
  auto rest = whole_epoch(loader, 4, 5);
  CATCH_REQUIRE(full.size() == 8);
  CATCH_REQUIRE(rest.size() == 3);
  for (std::size_t k = 0; k < rest.size(); ++k) {
    CATCH_CHECK(at::equal(rest[k].labels, full[k + 5].labels));
    CATCH_CHECK(at::equal(rest[k].images, full[k + 5].images));
  }
  CATCH_CHECK(whole_epoch(loader, 4, 8).empty());
  CATCH_CHECK_THROWS_AS(loader.start_epoch(4, 9), flatface::ConfigError);
}

CATCH_TEST_CASE("an exception while reading a sample reaches next(), naming the sample") {
  auto data = std::make_shared<PatternSet>(30, 3);
  data->fail_at_ = 17;
  Loader loader(data, options(5, 3, 1, 3));
  loader.start_epoch(0);
  auto drain = [&] {
    while (loader.next()) {
    }
  };
  CATCH_CHECK_THROWS_WITH(drain(), Contains("record 17 is corrupt") && Contains("sample 17"));
  CATCH_CHECK_THROWS_AS(loader.next(), flatface::RuntimeError);  // sticky until a new epoch
  // the batches before the failing one were delivered in order
  auto perm = flatface::epoch_permutation(30, 1, 0);
  const auto bad_batch = (std::find(perm.begin(), perm.end(), 17) - perm.begin()) / 5;
  loader.start_epoch(0);
  for (std::int64_t k = 0; k < bad_batch; ++k) CATCH_CHECK(loader.next().has_value());
  CATCH_CHECK_THROWS_AS(loader.next(), flatface::RuntimeError);
}

CATCH_TEST_CASE("a label outside [0, num_classes) is an error naming the sample") {
  auto data = std::make_shared<PatternSet>(10, 3);
  data->label_offset_ = 5;  // samples 5..9 get labels 10..14 of 10 classes
  Loader loader(data, options(10, 3));
  loader.start_epoch(0);
  CATCH_CHECK_THROWS_WITH(loader.next(), Contains("outside [0, 10)"));
}

CATCH_TEST_CASE("impossible options are configuration errors") {
  auto data = std::make_shared<PatternSet>(10, 3);
  CATCH_CHECK_THROWS_AS(Loader(data, options(11, 3)), flatface::ConfigError);
  CATCH_CHECK_THROWS_AS(Loader(data, options(0, 3)), flatface::ConfigError);
  CATCH_CHECK_THROWS_AS(Loader(data, options(2, 0)), flatface::ConfigError);
  Loader loader(data, options(2, 3));
  CATCH_CHECK_THROWS_AS(loader.next(), flatface::RuntimeError);  // before start_epoch
}

CATCH_TEST_CASE("destroying the loader mid-epoch stops its workers") {
  auto data = std::make_shared<PatternSet>(200, 3);
  data->delay_ms_ = 2;
  for (int threads : {1, 4}) {
    auto o = options(10, 3, 0, threads);
    o.prefetch_batches = 3;
    auto loader = std::make_unique<Loader>(data, o);
    loader->start_epoch(0);
    CATCH_CHECK(loader->next().has_value());
    loader.reset();  // returns (joins) while workers are busy with later batches
    CATCH_CHECK(loader == nullptr);
  }
}

CATCH_TEST_CASE("pin_memory is harmless without CUDA") {
  auto data = std::make_shared<PatternSet>(10, 3);
  auto o = options(5, 3);
  o.pin_memory = true;
  Loader loader(data, o);
  auto batches = whole_epoch(loader, 0);
  CATCH_CHECK(batches.size() == 2);
}

namespace {

// In-memory JPEGs decoded on every get(), like a RecordIO set.
class JpegSet : public flatface::TrainSet {
 public:
  JpegSet(std::size_t n, int side) {
    for (std::size_t i = 0; i < n; ++i)
      jpegs_.push_back(flatface::encode_jpeg(pattern_image(i, side, side), 95));
  }
  std::size_t size() const override { return jpegs_.size(); }
  std::int64_t num_classes() const override { return static_cast<std::int64_t>(jpegs_.size()); }
  Sample get(std::size_t i) const override {
    return {flatface::decode_image(jpegs_[i]), static_cast<std::int64_t>(i)};
  }
  std::string describe() const override { return "in-memory JPEG"; }

 private:
  std::vector<std::vector<std::uint8_t>> jpegs_;
};

// The same samples read one after another on this thread, without the loader.
double serial_get_per_second(const flatface::TrainSet& data) {
  auto start = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < data.size(); ++i) data.get(i);
  std::chrono::duration<double> s = std::chrono::steady_clock::now() - start;
  return static_cast<double>(data.size()) / s.count();
}

double images_per_second(std::shared_ptr<const flatface::TrainSet> data, std::int64_t side,
                         int threads) {
  auto o = options(64, side, 0, threads);
  Loader loader(std::move(data), o);
  loader.start_epoch(0);  // warm-up: the first batch buffers are allocated (page faults)
  while (loader.next()) {
  }
  loader.start_epoch(1);
  std::int64_t images = 0;
  auto start = std::chrono::steady_clock::now();
  while (auto b = loader.next()) images += b->labels.size(0);
  std::chrono::duration<double> s = std::chrono::steady_clock::now() - start;
  return images / s.count();
}

}  // namespace

// Not a check: run `test_loader "[.benchmark]"` to print decoding throughput.
CATCH_TEST_CASE("loader throughput on JPEG data", "[.benchmark]") {
  auto jpeg = std::make_shared<JpegSet>(1024, 112);
  std::printf("in-memory JPEG 112x112, get() alone: %.0f images/s\n", serial_get_per_second(*jpeg));
  for (int threads : {1, 2})
    std::printf("in-memory JPEG 112x112, %d thread(s): %.0f images/s\n", threads,
                images_per_second(jpeg, 112, threads));
  auto reg = flatface::open_registry({});
  if (reg->find(flatface::PluginKind::dataset, "insightface-rec")) {
    flatface::PluginRef ref{"insightface-rec", flatface::Options("kz25", {})};
    ref.options.set("path", {std::string(FLATFACE_SHARED_DIR) + "/data/kz25", {}});
    auto kz25 = flatface::make_train_set(*reg, ref, 112, 0);
    std::printf("kz25 train.rec, get() alone: %.0f images/s\n", serial_get_per_second(*kz25));
    for (int threads : {1, 2})
      std::printf("kz25 train.rec (insightface-rec), %d thread(s): %.0f images/s\n", threads,
                  images_per_second(kz25, 112, threads));
  } else {
    std::printf("(no insightface-rec plugin found: kz25 not measured)\n");
  }
}

CATCH_TEST_CASE("the ranks' shares of a global batch, side by side, are the single-process batch") {
  // Data-parallel training: 7 rows on 2 ranks are rows [0, 3) and [3, 7) of every batch in the
  // one-process order, images (with their flips) included.
  auto data = std::make_shared<PatternSet>(30, 6);
  Loader whole(data, options(7, 6));
  const auto expected = whole_epoch(whole, 2);
  std::vector<std::vector<Batch>> shares;
  for (int rank = 0; rank < 2; ++rank) {
    auto o = options(7, 6);
    std::tie(o.share_begin, o.share_end) = flatface::batch_share(7, rank, 2);
    Loader part(data, o);
    CATCH_CHECK(part.batches_per_epoch() == 4);
    shares.push_back(whole_epoch(part, 2));
  }
  CATCH_REQUIRE(shares[0].size() == expected.size());
  for (std::size_t b = 0; b < expected.size(); ++b) {
    CATCH_CHECK(shares[0][b].labels.size(0) == 3);
    CATCH_CHECK(shares[1][b].labels.size(0) == 4);
    CATCH_CHECK(at::equal(at::cat({shares[0][b].labels, shares[1][b].labels}), expected[b].labels));
    CATCH_CHECK(at::equal(at::cat({shares[0][b].images, shares[1][b].images}), expected[b].images));
  }
}
