// A plain SGD step (paper eq. 15: w <- SGD(w, grad L_margin(w))), shared by the test plugins.
#pragma once

#include <ATen/ops/cross_entropy_loss.h>

#include <memory>

#include "flatface/perturbation.hpp"

namespace flatface_test {

class ToyStep : public flatface::Perturbation {
 public:
  flatface::StepStats step(flatface::StepContext& ctx) override {
    ctx.zero_grad();
    at::Tensor loss = at::cross_entropy_loss(ctx.forward(flatface::Pass::first), ctx.labels());
    loss.backward();
    ctx.optimizer_step();
    flatface::StepStats stats;  // the loss alone: no gradient norm, no second pass
    stats.loss = loss.item<double>();
    return stats;
  }
  bool two_pass() const override { return false; }
};

// Reads `rho` so that grids with a rho axis can use it; the step itself ignores it.
inline std::unique_ptr<flatface::Perturbation> make_toy_step(
    const flatface::PerturbationArgs& args) {
  (void)args.options.get_double("rho", 0.0);
  return std::make_unique<ToyStep>();
}

}  // namespace flatface_test
