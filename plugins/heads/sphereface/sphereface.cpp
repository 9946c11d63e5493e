// SphereFace (Liu et al., "SphereFace: Deep Hypersphere Embedding for Face Recognition", CVPR 2017,
// Sec. 3; github.com/wy1iu/sphereface margin_inner_product_layer.cpp and the training prototxt,
// github.com/clcarwin/sphereface_pytorch net_sphere.py): A-Softmax, a multiplicative angular margin
//   ψ(θ) = (−1)^k cos(mθ) − 2k  for θ ∈ [kπ/m, (k+1)π/m],  k = ⌊mθ/π⌋ (a constant for autograd),
//   target logit ‖x‖ (λ cos θ + ψ(θ)) / (1 + λ),  other logits ‖x‖ cos θ,
// with cos(mθ) as the Chebyshev polynomial T_m(cos θ). As in the original, the logits are scaled
// by the feature norm ‖x‖ (differentiable), not by a fixed s; the class weights are normalised.
// λ anneals by iteration as in the original training:
//   λ = max(λ_min, base (1 + γ it)^(−power)),  it = step + 1 (Caffe's layer counts the step it
// is in), defaults base 1000, γ 0.12, power 1, λ_min 5 (the released prototxt; sphereface_pytorch
// uses base 1500, γ 0.1).
#include <ATen/core/grad_mode.h>
#include <ATen/ops/full.h>
#include <ATen/ops/ones_like.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

#include "flatface/cosine_head.hpp"
#include "flatface/plugin.hpp"

namespace flatface::heads {
namespace {

class SphereFace final : public CosineHead {
 public:
  explicit SphereFace(const HeadArgs& args)
      : CosineHead(args, "sphereface"),
        m_(args.options.get_int("m", 4)),
        base_(positive_option(args.options, "base", 1000.0)),
        gamma_(nonnegative_option(args.options, "gamma", 0.12)),
        power_(nonnegative_option(args.options, "power", 1.0)),
        lambda_min_(nonnegative_option(args.options, "lambda_min", 5.0)) {
    if (m_ < 1 || m_ > 10)
      throw ConfigError(args.options.pos_of("m").str() +
                        ": m must be an integer in [1, 10] for head 'sphereface' (got " +
                        std::to_string(m_) + ")");
    // λ of the step last begun, so that a head restored from a checkpoint scores as it trained.
    lambda_buffer_ = register_buffer("lambda", at::full({1}, lambda_at(0), at::kDouble));
  }

  void begin_step(const HeadStep& s) override {
    lambda_ = lambda_at(s.step);
    lambda_buffer_.fill_(*lambda_);
  }

  at::Tensor logits(const at::Tensor& embeddings, const at::Tensor& labels) override {
    const double lambda = lambda_ ? *lambda_ : lambda_buffer_.item<double>();
    at::Tensor norm = embeddings.norm(2, {1}, /*keepdim=*/true);  // ‖x‖, [N,1]
    at::Tensor cos = cosine(embeddings);
    at::Tensor c = target_column(cos, labels);
    at::Tensor k;
    {
      at::NoGradGuard no_grad;
      k = (static_cast<double>(m_) * c.acos() / M_PI).floor();
    }
    at::Tensor sign = 1.0 - 2.0 * k.remainder(2.0);           // (−1)^k
    at::Tensor psi = sign * chebyshev(c) - 2.0 * k;           // ψ(θ)
    at::Tensor target = (lambda * c + psi) / (1.0 + lambda);  // blended with cos θ by λ
    return norm * with_target(cos, labels, target);
  }

 private:
  // cos(mθ) = T_m(cos θ): T_0 = 1, T_1 = x, T_{j+1} = 2x T_j − T_{j−1}.
  at::Tensor chebyshev(const at::Tensor& x) const {
    at::Tensor previous = at::ones_like(x), current = x;
    for (std::int64_t j = 1; j < m_; ++j) {
      at::Tensor next = 2.0 * x * current - previous;
      previous = current;
      current = next;
    }
    return current;
  }

  double lambda_at(std::int64_t step) const {
    const double it = static_cast<double>(step + 1);
    return std::max(lambda_min_, base_ * std::pow(1.0 + gamma_ * it, -power_));
  }

  std::int64_t m_;
  double base_, gamma_, power_, lambda_min_;
  std::optional<double> lambda_;  // set by begin_step; otherwise the buffer's
  at::Tensor lambda_buffer_;
};

std::shared_ptr<MarginHead> make_sphereface(const HeadArgs& args) {
  return std::make_shared<SphereFace>(args);
}

}  // namespace
}  // namespace flatface::heads

FLATFACE_PLUGIN(flatface::head_entry(
    "sphereface",
    "A-Softmax: multiplicative angular margin psi(m theta), lambda annealed (SphereFace)",
    &flatface::heads::make_sphereface))
