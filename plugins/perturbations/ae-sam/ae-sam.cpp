// AE-SAM (Jiang et al., "An Adaptive Policy to Employ Sharpness-Aware Minimization", ICLR 2023,
// Algorithm 1): a SAM step only where the loss surface looks sharp, a plain step elsewhere.
// ‖g‖² of g = ∇L_margin(w) is taken as normally distributed; its mean and variance are
// exponential moving averages, updated with the current step before it is judged:
//   μ_t = δ μ_{t−1} + (1 − δ) ‖g_t‖²,  σ_t² = δ σ_{t−1}² + (1 − δ)(‖g_t‖² − μ_t)²
//   (μ and σ² start at 0), c_t = λ₁ t/T + λ₂ (1 − t/T) (λ₂ at the first step, λ₁ at the last);
//   ‖g_t‖² ≥ μ_t + c_t σ_t: SAM step, ε = ρ g/‖g‖ (or AACE's −ρ ∇L_AACE), w ← SGD(w, ∇L(w + ε));
//   otherwise:             w ← SGD(w, g).
// With λ₁ < λ₂ the threshold falls, so SAM steps become more frequent as training goes on.
// A host that does not know the run's length T takes c at the middle of the schedule.
#include <ATen/ops/full.h>
#include <ATen/ops/tensor.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "flatface/aace_loss.hpp"
#include "flatface/collectives.hpp"
#include "flatface/plugin.hpp"
#include "flatface/step_ops.hpp"

namespace flatface::perturbations {
namespace {

class AeSam final : public Perturbation {
 public:
  AeSam(double rho, double delta, double lambda1, double lambda2, Direction direction)
      : rho_(rho), delta_(delta), lambda1_(lambda1), lambda2_(lambda2), direction_(direction) {}

  StepStats step(StepContext& ctx) override {
    const StepProgress p = ctx.progress();
    MarginGradient g = margin_gradient(ctx, /*keep_logits=*/direction_ == Direction::aace);

    // The policy needs ‖g‖² on the host: one synchronisation.
    const double g_norm = g.norm.item<double>();
    const double sq = g_norm * g_norm;
    mean_ = delta_ * mean_ + (1 - delta_) * sq;
    variance_ = delta_ * variance_ + (1 - delta_) * (sq - mean_) * (sq - mean_);
    const double progress =
        p.total_steps > 0
            ? std::clamp(static_cast<double>(p.step) / static_cast<double>(p.total_steps), 0.0, 1.0)
            : 0.5;
    const double c = lambda1_ * progress + lambda2_ * (1 - progress);
    bool sharp = sq >= mean_ + c * std::sqrt(variance_);
    // Data-parallel ranks take the second pass together or not at all: under epsilon = "local"
    // each judges its own ‖g‖², and one rank's SAM step alone would leave the others waiting in
    // its all-reduce. The step is sharp where any rank finds it so.
    if (Collectives& ranks = ctx.collectives(); ranks.world_size() > 1) {
      at::Tensor votes = at::full({1}, sharp ? 1.0 : 0.0, g.norm.options().dtype(at::kDouble));
      ranks.all_reduce_sum({votes});
      sharp = votes.item<double>() > 0;
    }

    StepReport report(g.loss);
    report.grad_norm(g.norm);
    if (!sharp) {
      g.logits = at::Tensor();
      ctx.optimizer_step();  // on g
      return report.to_host();
    }
    DirectedEpsilon e = directed_epsilon(ctx, g, rho_, direction_);
    PerturbedPass perturbed = descend_from_perturbed(ctx, std::move(e.eps));
    return report.second_pass(e.loss, perturbed).to_host();
  }
  bool two_pass() const override { return true; }

  std::vector<at::Tensor> state() const override {
    return {at::tensor({mean_, variance_}, at::kDouble)};
  }
  void load_state(const std::vector<at::Tensor>& s) override {
    if (s.size() != 1 || s[0].numel() != 2) {
      throw RuntimeError("ae-sam: expected its state as one tensor of 2 values (mean, variance)");
    }
    at::Tensor v = s[0].to(at::kCPU, at::kDouble);
    mean_ = v[0].item<double>();
    variance_ = v[1].item<double>();
  }

 private:
  double rho_, delta_, lambda1_, lambda2_;
  Direction direction_;
  double mean_ = 0, variance_ = 0;  // of ‖g‖²
};

std::unique_ptr<Perturbation> make_ae_sam(const PerturbationArgs& args) {
  const Options& o = args.options;
  const double rho = rho_option(o, 0.05);
  const double delta = o.get_double("delta", 0.9);
  if (!(delta >= 0 && delta < 1)) {
    throw ConfigError(o.pos_of("delta").str() + ": delta must be in [0, 1) for " + o.what() +
                      " (got " + std::to_string(delta) + ")");
  }
  const double lambda1 = o.get_double("lambda1", -1.0);
  const double lambda2 = o.get_double("lambda2", 1.0);
  for (const auto& [key, value] : {std::pair{"lambda1", lambda1}, std::pair{"lambda2", lambda2}}) {
    if (!std::isfinite(value)) {
      throw ConfigError(o.pos_of(key).str() + ": " + key + " must be a finite number for " +
                        o.what());
    }
  }
  return std::make_unique<AeSam>(rho, delta, lambda1, lambda2, direction_option(o));
}

}  // namespace
}  // namespace flatface::perturbations

FLATFACE_PLUGIN(flatface::perturbation_entry(
    "ae-sam",
    "AE-SAM: a SAM step only when ||g||^2 >= its running mean + c_t std, else a plain step",
    &flatface::perturbations::make_ae_sam))
