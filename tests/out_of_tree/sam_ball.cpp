// SAM in another ball, built out of tree from the installed step operations
// (flatface/step_ops.hpp). Foret et al. (2021, eq. 2) solve the inner maximisation over an l_p
// ball of radius ρ; p = 2 gives sam's ε = ρ g / ‖g‖₂ (paper eq. 17), p = ∞ gives ε = ρ sign(g).
// Option ball = "l2" (the in-tree sam, to the bit) | "linf".
#include <ATen/core/grad_mode.h>

#include <flatface/plugin.hpp>
#include <flatface/step_ops.hpp>
#include <utility>

namespace {

using namespace flatface::perturbations;

class SamBall final : public flatface::Perturbation {
 public:
  SamBall(double rho, bool linf) : rho_(rho), linf_(linf) {}

  flatface::StepStats step(flatface::StepContext& ctx) override {
    MarginGradient g = margin_gradient(ctx);
    auto& eps = g.grad;  // ε in place in the gradient buffers
    if (linf_) {
      at::NoGradGuard no_grad;
      for (auto& e : eps) e.sign_().mul_(rho_);  // ε = ρ sign(g): the one line that differs
    } else {
      scale_to_sam_epsilon(eps, g.norm, rho_);  // ε = ρ g / ‖g‖₂
    }
    PerturbedPass perturbed = descend_from_perturbed(ctx, std::move(eps));
    return StepReport(g.loss).grad_norm(g.norm).second_pass(g.loss, perturbed).to_host();
  }
  bool two_pass() const override { return true; }

 private:
  double rho_;
  bool linf_;
};

std::unique_ptr<flatface::Perturbation> make(const flatface::PerturbationArgs& args) {
  const flatface::Options& o = args.options;
  return std::make_unique<SamBall>(rho_option(o, 0.05),
                                   o.get_choice("ball", "l2", {"l2", "linf"}) == "linf");
}

}  // namespace

FLATFACE_PLUGIN(flatface::perturbation_entry(
    "sam-ball", "SAM with eps in an l2 (= sam) or l-infinity ball, out of tree", &make))
