// Adaptive SAM (Kwon et al. 2021): the neighbourhood is scaled per weight by
// T_w = |w| + η on weight tensors (identity on biases, BN and other 1-d parameters);
// ε = ρ T² g / ‖T g‖₂, then w ← SGD(w, ∇L_margin(w + ε)) as in eq. 18.
#include <ATen/ops/abs.h>

#include <utility>

#include "flatface/plugin.hpp"
#include "flatface/step_ops.hpp"

namespace flatface::perturbations {
namespace {

class Asam final : public Perturbation {
 public:
  Asam(double rho, double eta) : rho_(rho), eta_(eta) {}

  StepStats step(StepContext& ctx) override {
    const auto& w = ctx.parameters();
    MarginGradient g = margin_gradient(ctx);
    // ε is formed in place in the gradient buffers; w_saved is scratch for T until the weights
    // are saved.
    auto& eps = g.grad;
    auto& t = ctx.saved_weights();
    {
      at::NoGradGuard no_grad;
      for (std::size_t i = 0; i < w.size(); ++i) {
        if (!scaled(w[i])) continue;         // T = 1
        at::abs_out(t[i], w[i]).add_(eta_);  // T = |w| + η
        eps[i].mul_(t[i]);                   // T g
      }
      at::Tensor scale = rho_ / (global_norm(eps) + 1e-12);  // ρ / ‖T g‖
      for (std::size_t i = 0; i < w.size(); ++i) {
        if (scaled(w[i])) eps[i].mul_(t[i]);  // T² g
        eps[i].mul_(scale);
      }
    }
    PerturbedPass perturbed = descend_from_perturbed(ctx, std::move(eps));
    return StepReport(g.loss).grad_norm(g.norm).second_pass(g.loss, perturbed).to_host();
  }
  bool two_pass() const override { return true; }

 private:
  static bool scaled(const at::Tensor& p) { return p.dim() > 1; }

  double rho_;
  double eta_;
};

std::unique_ptr<Perturbation> make_asam(const PerturbationArgs& args) {
  double rho = rho_option(args.options, 0.5);
  double eta = args.options.get_double("eta", 0.01);
  if (!(eta >= 0)) {
    throw ConfigError(args.options.pos_of("eta").str() + ": eta must be >= 0 for " +
                      args.options.what());
  }
  return std::make_unique<Asam>(rho, eta);
}

}  // namespace
}  // namespace flatface::perturbations

FLATFACE_PLUGIN(flatface::perturbation_entry(
    "asam", "adaptive SAM: eps = rho T^2 g/||T g||, T = |w| + eta on weight tensors",
    &flatface::perturbations::make_asam))
