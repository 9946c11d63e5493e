// No perturbation: g = ∇L_margin(w), w ← SGD(w, g) (paper eq. 15).
#include "flatface/plugin.hpp"
#include "flatface/step_ops.hpp"

namespace flatface::perturbations {
namespace {

class NoPerturbation final : public Perturbation {
 public:
  StepStats step(StepContext& ctx) override {
    MarginGradient g = margin_gradient(ctx);
    ctx.optimizer_step();  // eq. 15

    auto v = to_host({g.loss, g.norm});
    StepStats stats;
    stats.loss = v[0];
    stats.perturbation_loss = kNaN;
    stats.loss_perturbed = kNaN;
    stats.grad_norm = v[1];
    stats.epsilon_norm = kNaN;
    return stats;
  }
  bool two_pass() const override { return false; }
};

std::unique_ptr<Perturbation> make_none(const PerturbationArgs&) {
  return std::make_unique<NoPerturbation>();
}

}  // namespace
}  // namespace flatface::perturbations

FLATFACE_PLUGIN(flatface::perturbation_entry("none", "plain SGD step, no weight perturbation",
                                             &flatface::perturbations::make_none))
