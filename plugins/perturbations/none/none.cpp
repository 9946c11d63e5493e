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
    return StepReport(g.loss).grad_norm(g.norm).to_host();
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
