// A backbone on a verification set: flip-summed, normalised embeddings and the 10-fold result.
#include <ATen/ops/allclose.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "catch_compat.hpp"
#include "evaluation/embedding_file.hpp"
#include "evaluation/evaluation.hpp"

using catch_compat::Approx;
using catch_compat::Contains;
using flatface::Image;

namespace {

// f(x) = (mean of the left half of channel 0, mean of its right half, 1): not mirror invariant,
// so f(x) + f(flip x) differs from 2 f(x). Records the mode it ran in.
class HalvesBackbone : public flatface::Backbone {
 public:
  explicit HalvesBackbone(std::int64_t side) : side_(side) {}
  torch::Tensor forward(const torch::Tensor& x) override {
    modes.push_back(is_training());
    grad_enabled.push_back(at::GradMode::is_enabled());
    batch_sizes.push_back(x.size(0));
    at::Tensor red = x.select(1, 0);
    at::Tensor left = red.narrow(2, 0, side_ / 2).mean({1, 2});
    at::Tensor right = red.narrow(2, side_ / 2, side_ / 2).mean({1, 2});
    return at::stack({left, right, at::ones({x.size(0)})}, 1);
  }
  std::int64_t embedding_dim() const override { return 3; }
  std::int64_t input_size() const override { return side_; }
  std::vector<bool> modes, grad_enabled;
  std::vector<std::int64_t> batch_sizes;

 private:
  std::int64_t side_;
};

// Image i: left half value left[i], right half value right[i] (all channels).
class HalvesSet : public flatface::VerificationSet {
 public:
  HalvesSet(std::vector<std::uint8_t> left, std::vector<std::uint8_t> right, std::vector<bool> same,
            int side)
      : left_(std::move(left)), right_(std::move(right)), same_(std::move(same)), side_(side) {}
  std::size_t num_pairs() const override { return same_.size(); }
  Image image(std::size_t i) const override {
    if (i == fail_at) throw flatface::RuntimeError("truncated JPEG");
    Image im{side_, side_, std::vector<std::uint8_t>(static_cast<std::size_t>(side_) * side_ * 3)};
    for (int y = 0; y < side_; ++y)
      for (int x = 0; x < side_; ++x)
        for (int c = 0; c < 3; ++c)
          im.pixels[(y * side_ + x) * 3 + c] = x < side_ / 2 ? left_[i] : right_[i];
    return im;
  }
  const std::vector<bool>& issame() const override { return same_; }
  std::string describe() const override { return "halves set"; }
  std::size_t fail_at = static_cast<std::size_t>(-1);

 private:
  std::vector<std::uint8_t> left_, right_;
  std::vector<bool> same_;
  int side_;
};

float normalised(std::uint8_t v) {
  return (v / 255.0f - 0.5f) / 0.5f;
}

}  // namespace

CATCH_TEST_CASE("an embedding is normalise(f(x) + f(flip x)), one row per image, in order") {
  // image 0: left white, right black -> f(x) = (1, -1, 1), f(flip x) = (-1, 1, 1): sum (0, 0, 2)
  // image 1..9: uniform value v -> sum 2 (v, v, 1) -> (v, v, 1) / sqrt(2 v^2 + 1)
  std::vector<std::uint8_t> left{255}, right{0};
  for (int i = 1; i < 10; ++i)
    left.push_back(static_cast<std::uint8_t>(25 * i)), right.push_back(left.back());
  HalvesSet set(left, right, std::vector<bool>(5, true), 4);
  HalvesBackbone backbone(4);
  backbone.train();
  at::Tensor e = flatface::embed_pairs(backbone, set, 4, at::kCPU);  // batches 4, 4, 2
  CATCH_REQUIRE(e.sizes() == at::IntArrayRef{10, 3});
  CATCH_CHECK(e.scalar_type() == at::kFloat);
  CATCH_CHECK(at::allclose(e[0], at::tensor({0.0f, 0.0f, 1.0f}), 0, 1e-6));
  for (int i = 1; i < 10; ++i) {
    const float v = normalised(left[i]), n = std::sqrt(2 * v * v + 1);
    CATCH_CHECK(at::allclose(e[i], at::tensor({v / n, v / n, 1 / n}), 0, 1e-6));
  }
  // eval mode and no gradients during the passes, training mode restored afterwards
  for (bool m : backbone.modes) CATCH_CHECK(!m);
  for (bool g : backbone.grad_enabled) CATCH_CHECK(!g);
  CATCH_CHECK(backbone.is_training());
  CATCH_CHECK(backbone.batch_sizes == std::vector<std::int64_t>{4, 4, 4, 4, 2, 2});
}

CATCH_TEST_CASE("embeddings see images in the backbone's input format: BGR swaps red and blue") {
  // Image i: red = v_i, green = 128, blue = 255 - v_i everywhere. HalvesBackbone reads its input
  // channel 0: red for an RGB network, blue for a BGR one, and normalised(255 - v) = -normalised(v),
  // so by hand: RGB (v, v, 1) / n, BGR (-v, -v, 1) / n, n = sqrt(2 v^2 + 1).
  class ColourSet : public flatface::VerificationSet {
   public:
    std::size_t num_pairs() const override { return 2; }
    Image image(std::size_t i) const override {
      Image im{4, 4, {}};
      for (int p = 0; p < 16; ++p)
        im.pixels.insert(im.pixels.end(), {value(i), 128, static_cast<std::uint8_t>(255 - value(i))});
      return im;
    }
    const std::vector<bool>& issame() const override { return same_; }
    std::string describe() const override { return "colour set"; }
    static std::uint8_t value(std::size_t i) { return static_cast<std::uint8_t>(40 + 50 * i); }

   private:
    std::vector<bool> same_{true, false};
  } set;
  HalvesBackbone backbone(4);
  const at::Tensor rgb = flatface::embed_pairs(backbone, set, 4, at::kCPU);
  flatface::InputFormat bgr;
  bgr.bgr = true;
  backbone.set_input_format(bgr);
  const at::Tensor swapped = flatface::embed_pairs(backbone, set, 4, at::kCPU);
  for (std::size_t i = 0; i < 4; ++i) {
    const float v = normalised(ColourSet::value(i)), n = std::sqrt(2 * v * v + 1);
    CATCH_CHECK(at::allclose(rgb[i], at::tensor({v / n, v / n, 1 / n}), 0, 1e-6));
    CATCH_CHECK(at::allclose(swapped[i], at::tensor({-v / n, -v / n, 1 / n}), 0, 1e-6));
  }
}

CATCH_TEST_CASE("evaluate runs the 10-fold protocol on the embeddings") {
  // 20 pairs: "same" pairs are identical images (distance 0); "different" pairs have mirrored
  // halves, (a, b) vs (b, a), whose flip sums are equal too, except when a == b... so use values
  // that differ in brightness: (200, 200) vs (20, 20) -> embeddings far apart.
  std::vector<std::uint8_t> left, right;
  std::vector<bool> same;
  for (int p = 0; p < 20; ++p) {
    const bool s = p % 3 != 0;
    same.push_back(s);
    left.insert(left.end(), {200, static_cast<std::uint8_t>(s ? 200 : 20)});
    right.insert(right.end(), {200, static_cast<std::uint8_t>(s ? 200 : 20)});
  }
  HalvesSet set(left, right, same, 4);
  HalvesBackbone backbone(4);
  backbone.eval();
  auto r = flatface::evaluate(backbone, set, 8, at::kCPU);
  // same pairs at distance 0 and different pairs far away: the first perfect threshold is 0.01
  CATCH_CHECK(r.accuracy == 1.0);
  CATCH_CHECK(r.accuracy_std == 0.0);
  CATCH_CHECK(r.threshold == Approx(0.01).margin(1e-12));
  CATCH_CHECK(r.fold_accuracies.size() == 10);
  CATCH_CHECK(!backbone.is_training());  // eval mode was kept
}

CATCH_TEST_CASE("an image that fails to decode is an error naming the set and the image") {
  HalvesSet set(std::vector<std::uint8_t>(20, 9), std::vector<std::uint8_t>(20, 9),
                std::vector<bool>(10, true), 4);
  set.fail_at = 13;
  HalvesBackbone backbone(4);
  CATCH_CHECK_THROWS_WITH(flatface::embed_pairs(backbone, set, 4, at::kCPU),
                          Contains("halves set: image 13: truncated JPEG"));
  CATCH_CHECK(backbone.is_training());
}

CATCH_TEST_CASE("embeddings and issame are written to HDF5 readable by h5py") {
  namespace fs = std::filesystem;
  fs::path file =
      fs::temp_directory_path() / ("flatface_embed_" + std::to_string(::getpid()) + ".h5");
  at::Tensor e = at::tensor({0.6f, 0.8f, 1.0f, 0.0f, 0.0f, 1.0f, -1.0f, 0.0f}).reshape({4, 2});
  flatface::write_embedding_file(file.string(), e, {true, false}, {{"set", "LFW"}});
  CATCH_CHECK(!fs::exists(file.string() + ".tmp"));
  const std::string cmd =
      std::string(FLATFACE_PYTHON) + " -c \"import h5py; f = h5py.File('" + file.string() +
      "', 'r'); e = f['embeddings']; s = f['issame']; "
      "print(e.shape, e.dtype, s.dtype, s[:].tolist(), float(e[0, 1]), f.attrs['set'])\"";
  FILE* p = ::popen(cmd.c_str(), "r");
  CATCH_REQUIRE(p != nullptr);
  char buf[256] = {0};
  std::string out;
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  ::pclose(p);
  fs::remove(file);
  CATCH_CHECK(out == "(4, 2) float32 uint8 [1, 0] 0.800000011920929 LFW\n");
  CATCH_CHECK_THROWS_AS(flatface::write_embedding_file(file.string(), e, {true}, {}),
                        flatface::RuntimeError);
}
