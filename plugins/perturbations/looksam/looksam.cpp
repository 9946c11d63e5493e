// LookSAM (Liu et al., "Towards Efficient and Scalable Sharpness-Aware Minimization", CVPR 2022,
// Algorithm 1): the full SAM step only every k steps; in between, one pass and the sharpness part
// of the last perturbed gradient, reused.
//   every k-th step: g = ∇L(w), ε = ρ g/‖g‖ (or AACE's −ρ ∇L_AACE), g_s = ∇L(w + ε),
//                    g_v = g_s − (⟨g, g_s⟩ / ‖g‖²) g   (g_s less its projection on g),
//                    w ← SGD(w, g_s)
//   other steps:     g = ∇L(w), w ← SGD(w, g + α (‖g‖ / ‖g_v‖) g_v)
// L = L_margin over backbone and class weights. g_v is kept between steps (one parameter copy).
#include <ATen/ops/empty_like.h>

#include <string>
#include <utility>

#include "flatface/aace_loss.hpp"
#include "flatface/plugin.hpp"
#include "flatface/step_ops.hpp"

namespace flatface::perturbations {
namespace {

class LookSam final : public Perturbation {
 public:
  LookSam(double rho, std::int64_t k, double alpha, Direction direction)
      : rho_(rho), k_(k), alpha_(alpha), direction_(direction) {}

  StepStats step(StepContext& ctx) override {
    if (!g_v_.empty() && g_v_.size() != ctx.parameters().size()) {
      throw RuntimeError("looksam: the stored direction has " + std::to_string(g_v_.size()) +
                         " tensors, the model " + std::to_string(ctx.parameters().size()));
    }
    // A run (or a resumed run whose checkpoint holds no g_v) starts with a full step.
    const bool refresh = g_v_.empty() || ctx.progress().step % k_ == 0;
    return refresh ? sam_step(ctx) : reuse_step(ctx);
  }
  bool two_pass() const override { return true; }

  std::vector<at::Tensor> state() const override {
    if (g_v_.empty()) return {};
    std::vector<at::Tensor> s{g_v_norm_};
    s.insert(s.end(), g_v_.begin(), g_v_.end());
    return s;
  }
  void load_state(const std::vector<at::Tensor>& s) override {
    g_v_.clear();
    if (s.empty()) return;
    g_v_norm_ = s.front().clone();
    for (auto it = s.begin() + 1; it != s.end(); ++it) g_v_.push_back(it->clone());
  }

 private:
  StepStats sam_step(StepContext& ctx) {
    const auto& w = ctx.parameters();
    MarginGradient g = margin_gradient(ctx, /*keep_logits=*/direction_ == Direction::aace);
    {
      at::NoGradGuard no_grad;
      if (g_v_.empty()) {
        for (const auto& p : w) g_v_.push_back(at::empty_like(p.detach()));
      }
      for (std::size_t i = 0; i < w.size(); ++i) g_v_[i].copy_(g.grad[i]);  // g, until g_s comes
    }
    DirectedEpsilon e = directed_epsilon(ctx, g, rho_, direction_);
    PerturbedPass perturbed = gradient_at_perturbed(ctx, std::move(e.eps));

    {
      at::NoGradGuard no_grad;
      auto g_s = gradients(w);
      // g_v = g_s − (⟨g, g_s⟩/‖g‖²) g, in place over the copy of g.
      at::Tensor coef = global_dot(g_v_, g_s) / (g.norm * g.norm + 1e-24);
      for (std::size_t i = 0; i < w.size(); ++i) g_v_[i].mul_(-coef).add_(g_s[i]);
      g_v_norm_ = global_norm(g_v_);
    }
    ctx.optimizer_step();  // on g_s
    return StepReport(g.loss).grad_norm(g.norm).second_pass(e.loss, perturbed).to_host();
  }

  StepStats reuse_step(StepContext& ctx) {
    MarginGradient g = margin_gradient(ctx);
    {
      at::NoGradGuard no_grad;
      at::Tensor scale = alpha_ * g.norm / (g_v_norm_ + 1e-12);  // α ‖g‖/‖g_v‖
      for (std::size_t i = 0; i < g.grad.size(); ++i) g.grad[i].addcmul_(g_v_[i], scale);
    }
    ctx.optimizer_step();
    return StepReport(g.loss).grad_norm(g.norm).to_host();
  }

  double rho_;
  std::int64_t k_;
  double alpha_;
  Direction direction_;
  std::vector<at::Tensor> g_v_;  // the sharpness part of the last perturbed gradient
  at::Tensor g_v_norm_;          // ‖g_v‖, 0-dim
};

std::unique_ptr<Perturbation> make_looksam(const PerturbationArgs& args) {
  const Options& o = args.options;
  const double rho = rho_option(o, 0.05);
  const std::int64_t k = o.get_int("k", 5);
  if (k < 1) {
    throw ConfigError(o.pos_of("k").str() + ": k must be >= 1 for " + o.what() + " (got " +
                      std::to_string(k) + ")");
  }
  const double alpha = o.get_double("alpha", 0.7);
  if (!(alpha >= 0)) {
    throw ConfigError(o.pos_of("alpha").str() + ": alpha must be >= 0 for " + o.what());
  }
  return std::make_unique<LookSam>(rho, k, alpha, direction_option(o));
}

}  // namespace
}  // namespace flatface::perturbations

FLATFACE_PLUGIN(flatface::perturbation_entry(
    "looksam",
    "LookSAM: a SAM step every k steps, the orthogonal part of its gradient reused in between",
    &flatface::perturbations::make_looksam))
