// The AACE loss (paper eqs. 11-14): the logits pulled towards a target τ that puts no mass on the
// true class and spreads it over the others in proportion to the (detached) predicted
// probabilities q = softmax(z). Value and gradient come in closed form, without autograd, so the
// loss holds two [N,C] buffers besides the logits (autograd would keep about six; with many
// classes these are as large as the class-weight matrix).
#pragma once

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/logsumexp.h>
#include <ATen/ops/zeros.h>

#include <cmath>
#include <utility>
#include <vector>

#include "flatface/perturbation.hpp"
#include "flatface/step_ops.hpp"

namespace flatface::perturbations {

struct AaceLoss {
  at::Tensor value;        // L_AACE = mean_i KL(τ_i ‖ q_i), 0-dim
  at::Tensor grad_logits;  // ∂L_AACE/∂z, [N,C]
};

// τ is a constant, so ∂/∂z_i of KL(τ_i ‖ softmax(z_i)) is that of the cross-entropy −Σ τ log q
// (eq. 11): (Σ_j τ_ij) q_i − τ_i, divided by N for the batch mean.
//   normalized (the AACE authors' code): τ_j = q_j / Σ_{k≠y} q_k, the softmax over the other
//     classes' logits (exact also when q_y → 1). For every j ≠ y, log τ_j − log q_j =
//     lse(z) − lse_{k≠y}(z), and Σ τ = 1, so KL(τ ‖ q) = lse(z) − lse_{k≠y}(z) = −log(1 − q_y).
//   literal eq. 13: τ_j = q_j for j ≠ y, τ_y = 0, summing to 1 − q_y; KL(τ ‖ q) = 0 (τ equals q
//     on its support), while the gradient (1 − q_y) q − τ is not zero.
inline AaceLoss aace_loss(const at::Tensor& logits, const at::Tensor& labels, bool normalized) {
  at::NoGradGuard no_grad;
  at::Tensor z = logits.detach();
  at::Tensor y = labels.view({-1, 1});
  const double n = static_cast<double>(z.size(0));
  at::Tensor lse = z.logsumexp(1, /*keepdim=*/true);
  at::Tensor q = (z - lse).exp_();  // softmax(z)
  AaceLoss out;
  if (normalized) {
    at::Tensor tau = z.scatter(1, y, -INFINITY);
    at::Tensor lse_other = tau.logsumexp(1, /*keepdim=*/true);  // lse_{k≠y}(z)
    tau.sub_(lse_other).exp_();                                 // τ, 0 at y
    out.value = (lse - lse_other).sum() / n;
    out.grad_logits = q.sub_(tau).div_(n);  // (q − τ)/N
  } else {
    at::Tensor q_y = q.gather(1, y);
    at::Tensor tau = q.scatter(1, y, 0.0);
    out.value = at::zeros({}, z.options());
    out.grad_logits = q.mul_(1.0 - q_y).sub_(tau).div_(n);  // ((1 − q_y) q − τ)/N
  }
  return out;
}

// AACE's ε = −ρ ∇L_AACE(w) (eq. 20), formed in the gradient buffers from the logits of a first
// pass whose graph is still alive (e.g. kept by margin_gradient(ctx, true) after L_margin's
// backward); the buffers are cleared first, so copy out what they held if it is still needed. The
// logits are released. Returns L_AACE(w) (eq. 21).
inline at::Tensor aace_epsilon(StepContext& ctx, at::Tensor& logits, double rho) {
  at::Tensor surrogate, value;
  {
    AaceLoss aace = aace_loss(logits, ctx.labels(), /*normalized=*/true);
    value = aace.value;
    // Σ z ⊙ ∂L_AACE/∂z has the gradient of L_AACE with respect to the weights.
    surrogate = (logits * aace.grad_logits).sum();
  }
  logits = at::Tensor();
  ctx.zero_grad();
  surrogate.backward();
  ctx.share_first_gradient();  // ∇L_AACE of the global batch in a data-parallel run
  at::NoGradGuard no_grad;
  for (const auto& p : ctx.parameters()) {
    if (p.grad().defined()) p.mutable_grad().mul_(-rho);
  }
  return value;
}

// ε where a strategy's `direction` points, from its first pass g (whose gradient buffers it uses
// up): SAM's ρ g/‖g‖, in place in g's buffers, or FlatFace-AACE's −ρ ∇L_AACE from g's logits
// (paper eqs. 19-21). `loss` is the loss that defined ε: L_margin, or L_AACE.
struct DirectedEpsilon {
  std::vector<at::Tensor> eps;
  at::Tensor loss;
};
inline DirectedEpsilon directed_epsilon(StepContext& ctx, MarginGradient& g, double rho,
                                        Direction direction) {
  if (direction == Direction::sam) {
    scale_to_sam_epsilon(g.grad, g.norm, rho);
    return {std::move(g.grad), g.loss};
  }
  g.grad.clear();
  at::Tensor loss = aace_epsilon(ctx, g.logits, rho);
  return {gradients(ctx.parameters()), loss};
}

}  // namespace flatface::perturbations
