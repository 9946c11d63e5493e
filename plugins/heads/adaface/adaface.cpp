// AdaFace (Kim et al. 2022): a margin adapted to image quality, measured by the feature norm
// relative to running batch statistics (paper eq. 4).
#include <ATen/core/grad_mode.h>
#include <ATen/ops/full.h>
#include <ATen/ops/stack.h>

#include <cmath>

#include "flatface/collectives.hpp"
#include "flatface/cosine_head.hpp"
#include "flatface/plugin.hpp"

namespace flatface::heads {
namespace {

constexpr double kEps = 1e-3;  // AdaFace's stability constant for cosines, angles and σ

class AdaFace final : public CosineHead {
 public:
  explicit AdaFace(const HeadArgs& args)
      : CosineHead(args, "adaface"),
        s_(positive_option(args.options, "s", 64.0)),
        m_(nonnegative_option(args.options, "m", 0.4)),
        h_(nonnegative_option(args.options, "h", 0.333)),
        t_alpha_(nonnegative_option(args.options, "t_alpha", 0.01)),
        ranks_(*args.collectives) {
    if (t_alpha_ > 1) {
      throw ConfigError(args.options.pos_of("t_alpha").str() +
                        ": t_alpha must be in [0, 1] for head 'adaface'");
    }
    // Buffers, so that checkpoints carry them.
    batch_mean_ = register_buffer("batch_mean", at::full({1}, 20.0));
    batch_std_ = register_buffer("batch_std", at::full({1}, 100.0));
  }

  at::Tensor logits(const at::Tensor& embeddings, const at::Tensor& labels) override {
    // n = clip(‖x‖, 0.001, 100), detached: the margin depends on quality, it is not trained.
    at::Tensor norms = embeddings.detach().norm(2, {1}, /*keepdim=*/true).clamp(0.001, 100.0);
    if (update_statistics()) update_statistics_with(norms);

    // ŝ = clip(h (n − μ) / (σ + ε), −1, 1)
    at::Tensor scaler = (h_ * (norms - batch_mean_) / (batch_std_ + kEps)).clamp(-1.0, 1.0);

    at::Tensor cos = cosine(embeddings).clamp(-1.0 + kEps, 1.0 - kEps);
    at::Tensor theta = target_column(cos, labels).acos();
    // g_angle = −m ŝ: θ' = clip(θ_y − m ŝ, ε, π − ε)
    at::Tensor theta_m = (theta - m_ * scaler).clamp(kEps, M_PI - kEps);
    // g_add = m + m ŝ: target cosine cos θ' − g_add (eq. 4)
    at::Tensor target = theta_m.cos() - (m_ + m_ * scaler);
    return s_ * with_target(cos, labels, target);
  }

 private:
  // μ ← α mean(n) + (1 − α) μ,  σ ← α std(n) + (1 − α) σ  (unbiased std; a batch of one has no
  // spread to measure, so σ is then left alone).
  // In a data-parallel run mean and std are the global batch's, so that every rank holds the
  // same μ, σ.
  void update_statistics_with(const at::Tensor& norms) {
    at::NoGradGuard no_grad;
    at::Tensor mean, std;
    std::int64_t count = norms.size(0);
    if (ranks_.world_size() == 1) {
      mean = norms.mean();
      if (count > 1) std = norms.std();
    } else {
      // n, Σn and Σn² over all ranks, in float64: var = (Σn² − (Σn)²/n) / (n − 1).
      at::Tensor n = norms.to(at::kDouble);
      at::Tensor sums = at::stack(
          {at::full({}, static_cast<double>(count), n.options()), n.sum(), n.square().sum()});
      ranks_.all_reduce_sum({sums});
      count = static_cast<std::int64_t>(sums[0].item<double>() + 0.5);
      mean = (sums[1] / sums[0]).to(norms.scalar_type());
      if (count > 1)
        std = ((sums[2] - sums[1] * sums[1] / sums[0]) / (sums[0] - 1))
                  .clamp_min(0)
                  .sqrt()
                  .to(norms.scalar_type());
    }
    batch_mean_.mul_(1.0 - t_alpha_).add_(t_alpha_ * mean);
    if (count > 1) batch_std_.mul_(1.0 - t_alpha_).add_(t_alpha_ * std);
  }

  double s_;
  double m_;
  double h_;
  double t_alpha_;
  Collectives& ranks_;  // the run's ranks: μ and σ are the global batch's
  at::Tensor batch_mean_;
  at::Tensor batch_std_;
};

std::shared_ptr<MarginHead> make_adaface(const HeadArgs& args) {
  return std::make_shared<AdaFace>(args);
}

}  // namespace
}  // namespace flatface::heads

FLATFACE_PLUGIN(flatface::head_entry("adaface",
                                     "quality-adaptive margin from feature norms (AdaFace)",
                                     &flatface::heads::make_adaface))
