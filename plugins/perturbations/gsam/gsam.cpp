// GSAM (Zhuang et al., "Surrogate Gap Guided Sharpness-Aware Minimization", ICLR 2022,
// Algorithm 1): SAM's descent on f_p = L(w + ε), plus an ascent on L(w) orthogonal to it, which
// shrinks the surrogate gap f_p − L(w) without undoing the descent:
//   g = ∇L(w), ε = ρ_t g/‖g‖ (or AACE's −ρ_t ∇L_AACE), g_s = ∇L(w + ε),
//   g_⊥ = g − (⟨g, g_s⟩/‖g_s‖²) g_s   (the part of g orthogonal to g_s),
//   w ← SGD(w, g_s − α g_⊥).
// ρ_t = ρ, or with rho_schedule = "lr" ρ_t = ρ_min + (ρ − ρ_min) lr_t/lr_max, following the
// learning rate from its peak (lr_min = 0, as in the authors' ProportionScheduler set-up).
// g and g_s are needed together: a step holds one parameter copy more than SAM's.
#include <string>
#include <utility>

#include "flatface/aace_loss.hpp"
#include "flatface/plugin.hpp"
#include "flatface/step_ops.hpp"

namespace flatface::perturbations {
namespace {

class Gsam final : public Perturbation {
 public:
  Gsam(double rho, double rho_min, bool follow_lr, double alpha, Direction direction)
      : rho_(rho), rho_min_(rho_min), follow_lr_(follow_lr), alpha_(alpha), direction_(direction) {}

  StepStats step(StepContext& ctx) override {
    const auto& w = ctx.parameters();
    const double rho = radius(ctx.progress());
    MarginGradient first = margin_gradient(ctx, /*keep_logits=*/direction_ == Direction::aace);
    std::vector<at::Tensor> g;  // ∇L_margin(w), kept for the decomposition
    for (const auto& t : first.grad) g.push_back(t.detach().clone());

    DirectedEpsilon e = directed_epsilon(ctx, first, rho, direction_);
    PerturbedPass perturbed = gradient_at_perturbed(ctx, std::move(e.eps));

    {
      at::NoGradGuard no_grad;
      auto g_s = gradients(w);
      // g_s − α (g − c g_s) = (1 + α c) g_s − α g, with c = ⟨g, g_s⟩/‖g_s‖², in place in g_s.
      at::Tensor g_s_norm = global_norm(g_s);
      at::Tensor c = global_dot(g, g_s) / (g_s_norm * g_s_norm + 1e-24);
      at::Tensor keep = 1 + alpha_ * c;
      for (std::size_t i = 0; i < w.size(); ++i) g_s[i].mul_(keep).add_(g[i], -alpha_);
    }
    g.clear();
    ctx.optimizer_step();
    return StepReport(first.loss).grad_norm(first.norm).second_pass(e.loss, perturbed).to_host();
  }
  bool two_pass() const override { return true; }

 private:
  double radius(const StepProgress& p) const {
    if (!follow_lr_ || !(p.base_lr > 0)) return rho_;
    return rho_min_ + (rho_ - rho_min_) * p.lr / p.base_lr;
  }

  double rho_, rho_min_;
  bool follow_lr_;
  double alpha_;
  Direction direction_;
};

std::unique_ptr<Perturbation> make_gsam(const PerturbationArgs& args) {
  const Options& o = args.options;
  const double rho = rho_option(o, 0.05);
  const double alpha = o.get_double("alpha", 0.01);  // small, as used with ResNets
  if (!(alpha >= 0)) {
    throw ConfigError(o.pos_of("alpha").str() + ": alpha must be >= 0 for " + o.what());
  }
  const bool follow_lr = o.get_choice("rho_schedule", "constant", {"constant", "lr"}) == "lr";
  double rho_min = 0;
  if (follow_lr) {
    rho_min = o.get_double("rho_min", 0.0);
    if (!(rho_min >= 0 && rho_min <= rho)) {
      throw ConfigError(o.pos_of("rho_min").str() + ": rho_min must be in [0, rho] for " +
                        o.what() + " (got " + std::to_string(rho_min) + ")");
    }
  } else if (o.has("rho_min")) {
    throw ConfigError(o.pos_of("rho_min").str() +
                      ": rho_min applies only with rho_schedule = "
                      "\"lr\" for " +
                      o.what());
  }
  return std::make_unique<Gsam>(rho, rho_min, follow_lr, alpha, direction_option(o));
}

}  // namespace
}  // namespace flatface::perturbations

FLATFACE_PLUGIN(flatface::perturbation_entry(
    "gsam",
    "GSAM: SAM's perturbed gradient minus alpha times the part of g orthogonal to it; rho may "
    "follow the learning rate",
    &flatface::perturbations::make_gsam))
