#include "evaluation/evaluation.hpp"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/flip.h>

#include <algorithm>
#include <exception>
#include <future>
#include <string>
#include <vector>

#include "data/loader.hpp"
#include "data/parallel_for.hpp"

namespace flatface {

namespace {

// Images [begin, end) of the set, decoded on `threads` threads; errors name the image.
std::vector<Image> decode_range(const VerificationSet& set, std::size_t begin, std::size_t end,
                                int threads) {
  std::vector<Image> images(end - begin);
  parallel_for(begin, end, threads, [&](std::size_t i) {
    try {
      images[i - begin] = set.image(i);
    } catch (const std::exception& e) {
      throw RuntimeError(set.describe() + ": image " + std::to_string(i) + ": " + e.what());
    }
  });
  return images;
}

// Puts the module back in the mode it was in, also when a forward pass throws.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(Backbone& backbone) : backbone_(backbone), was_(backbone.is_training()) {
    backbone_.eval();
  }
  ~EvalModeGuard() { backbone_.train(was_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  Backbone& backbone_;
  bool was_;
};

// Row i = f(x_i) + f(flip(x_i)) in float64 on the CPU, not yet normalised; with `magnitudes`,
// also ‖f(x_i)‖ of each image as given.
at::Tensor flip_summed_embeddings(Backbone& backbone, const VerificationSet& set,
                                  std::int64_t batch_size, const c10::Device& device,
                                  at::Tensor* magnitudes = nullptr) {
  if (batch_size <= 0)
    throw ConfigError("evaluation: batch size must be positive, got " + std::to_string(batch_size));
  const std::size_t n = 2 * set.num_pairs();
  if (n == 0) throw RuntimeError(set.describe() + ": no pairs to evaluate");
  const std::int64_t side = backbone.input_size();
  const int threads = std::max(1, at::get_num_threads());
  const auto step = static_cast<std::size_t>(batch_size);

  EvalModeGuard eval_mode(backbone);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> rows, norms;
  auto pending =
      std::async(std::launch::async, decode_range, std::cref(set), 0, std::min(step, n), threads);
  for (std::size_t begin = 0; begin < n; begin += step) {
    std::vector<Image> images = pending.get();
    const std::size_t next = begin + step;
    if (next < n)  // decode the next batch while this one runs through the network
      pending = std::async(std::launch::async, decode_range, std::cref(set), next,
                           std::min(next + step, n), threads);
    at::Tensor x = images_to_tensor(images, side, {}, backbone.input_format()).to(device);
    at::Tensor f = backbone.forward(x).to(at::kDouble);
    if (magnitudes) norms.push_back(f.norm(2, {1}).to(at::kCPU));
    f = f + backbone.forward(at::flip(x, {3})).to(at::kDouble);
    rows.push_back(f.to(at::kCPU));
  }
  if (magnitudes) *magnitudes = at::cat(norms, 0);
  return at::cat(rows, 0);
}

// sklearn.preprocessing.normalize: rows divided by their L2 norm (zero rows stay zero).
at::Tensor l2_normalise(const at::Tensor& e) {
  at::Tensor norms = e.norm(2, {1}, /*keepdim=*/true);
  return e / norms.masked_fill(norms == 0, 1.0);
}

}  // namespace

at::Tensor embed_pairs(Backbone& backbone, const VerificationSet& set, std::int64_t batch_size,
                       const c10::Device& device) {
  return l2_normalise(flip_summed_embeddings(backbone, set, batch_size, device)).to(at::kFloat);
}

PairEmbeddings embed_pairs_with_magnitudes(Backbone& backbone, const VerificationSet& set,
                                           std::int64_t batch_size, const c10::Device& device) {
  PairEmbeddings out;
  out.embeddings =
      l2_normalise(flip_summed_embeddings(backbone, set, batch_size, device, &out.magnitudes))
          .to(at::kFloat);
  out.magnitudes = out.magnitudes.to(at::kFloat);
  return out;
}

VerificationResult evaluate(Backbone& backbone, const VerificationSet& set, std::int64_t batch_size,
                            const c10::Device& device) {
  at::Tensor embeddings = l2_normalise(flip_summed_embeddings(backbone, set, batch_size, device));
  return evaluate_pairs(embeddings, set.issame());
}

}  // namespace flatface
