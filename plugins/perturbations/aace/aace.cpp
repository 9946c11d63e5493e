// FlatFace-AACE: ε = −ρ ∇L_AACE(w), not normalised, so the step grows as the model converges
// (paper eqs. 20-21); then w ← SGD(w, ∇L_margin(w + ε)) (eq. 19).
#include <ATen/ops/_foreach_mul.h>

#include <utility>

#include "flatface/aace_loss.hpp"
#include "flatface/plugin.hpp"
#include "flatface/step_ops.hpp"

namespace flatface::perturbations {
namespace {

class Aace final : public Perturbation {
 public:
  Aace(double rho, bool normalize_target) : rho_(rho), normalize_target_(normalize_target) {}

  StepStats step(StepContext& ctx) override {
    const auto& w = ctx.parameters();
    ctx.zero_grad();
    at::Tensor loss, loss_aace, surrogate;
    {
      at::Tensor z = ctx.forward(Pass::first);
      AaceLoss aace = aace_loss(z, ctx.labels(), normalize_target_);  // eq. 21
      loss_aace = aace.value;
      {
        at::NoGradGuard no_grad;
        loss = margin_loss(ctx, z);  // logged only; ε does not use ∇L_margin(w)
      }
      // Σ z ⊙ ∂L_AACE/∂z has the gradient of L_AACE with respect to the weights. Unlike
      // z.backward(grad), it lets the logits go before the backward pass (the graph keeps only
      // the gradient, until its first node has run).
      surrogate = (z * aace.grad_logits).sum();
    }
    surrogate.backward();
    ctx.share_first_gradient();  // ∇L_AACE of the global batch in a data-parallel run

    auto eps = gradients(w);  // ε in place in the gradient buffers
    {
      at::NoGradGuard no_grad;
      at::_foreach_mul_(eps, -rho_);  // eq. 20
    }
    PerturbedPass perturbed = descend_from_perturbed(ctx, std::move(eps));  // eq. 19
    // No grad norm: ∇L_margin(w) is never formed (it would cost another backward pass), and
    // ‖∇L_AACE‖ = ‖ε‖/ρ.
    return StepReport(loss).second_pass(loss_aace, perturbed).to_host();
  }
  bool two_pass() const override { return true; }

 private:
  double rho_;
  bool normalize_target_;
};

std::unique_ptr<Perturbation> make_aace(const PerturbationArgs& args) {
  double rho = rho_option(args.options, 0.05);
  bool normalize_target = args.options.get_bool("normalize_target", true);
  return std::make_unique<Aace>(rho, normalize_target);
}

}  // namespace
}  // namespace flatface::perturbations

FLATFACE_PLUGIN(flatface::perturbation_entry(
    "aace", "adaptive adversarial cross-entropy: eps = -rho grad L_AACE, not normalised",
    &flatface::perturbations::make_aace))
