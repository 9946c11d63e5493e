// FlatFace-SAM: ε = ρ g / ‖g‖₂ with g = ∇L_margin(w) over all parameters (paper eq. 17), then
// w ← SGD(w, ∇L_margin(w + ε)) (eq. 18).
#include <utility>

#include "flatface/plugin.hpp"
#include "flatface/step_ops.hpp"

namespace flatface::perturbations {
namespace {

class Sam final : public Perturbation {
 public:
  explicit Sam(double rho) : rho_(rho) {}

  StepStats step(StepContext& ctx) override {
    MarginGradient g = margin_gradient(ctx);
    // ε is formed in place in the gradient buffers: no extra copy of the parameters.
    auto& eps = g.grad;
    scale_to_sam_epsilon(eps, g.norm, rho_);                                // eq. 17
    PerturbedPass perturbed = descend_from_perturbed(ctx, std::move(eps));  // eq. 18
    // ε follows the gradient of L_margin itself.
    return StepReport(g.loss).grad_norm(g.norm).second_pass(g.loss, perturbed).to_host();
  }
  bool two_pass() const override { return true; }

 private:
  double rho_;
};

std::unique_ptr<Perturbation> make_sam(const PerturbationArgs& args) {
  return std::make_unique<Sam>(rho_option(args.options, 0.05));
}

}  // namespace
}  // namespace flatface::perturbations

FLATFACE_PLUGIN(flatface::perturbation_entry(
    "sam", "sharpness-aware minimisation: eps = rho g/||g|| over all parameters",
    &flatface::perturbations::make_sam))
