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
    scale_to_sam_epsilon(eps, g.norm, rho_);  // eq. 17
    at::Tensor epsilon_norm = global_norm(eps);
    at::Tensor loss_perturbed = descend_from_perturbed(ctx, std::move(eps));  // eq. 18

    auto v = to_host({g.loss, loss_perturbed, g.norm, epsilon_norm});
    StepStats stats;
    stats.loss = v[0];
    stats.perturbation_loss = v[0];  // ε follows the gradient of L_margin itself
    stats.loss_perturbed = v[1];
    stats.grad_norm = v[2];
    stats.epsilon_norm = v[3];
    stats.second_pass = true;
    return stats;
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
