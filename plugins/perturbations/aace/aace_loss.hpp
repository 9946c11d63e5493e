// The AACE loss (paper eqs. 11-14): cross-entropy of the logits towards a target τ that puts no
// mass on the true class and spreads it over the others in proportion to the (detached)
// predicted probabilities.
#pragma once

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/log_softmax.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/xlogy.h>

namespace flatface::perturbations {

// τ [N,C], detached. normalized: τ_j = q_j / Σ_{k≠y} q_k (the AACE authors' code), computed as
// the softmax over the other classes' logits so that it stays exact when q_y → 1.
// Literal eq. 13: τ_j = q_j for j ≠ y, τ_y = 0, summing to 1 − q_y.
inline at::Tensor aace_target(const at::Tensor& logits, const at::Tensor& labels, bool normalized) {
  at::Tensor z = logits.detach();
  at::Tensor y = labels.view({-1, 1});
  if (normalized) return z.scatter(1, y, -INFINITY).softmax(1);
  return z.softmax(1).scatter(1, y, 0.0);
}

// L_AACE = mean_i KL(τ_i ‖ softmax(z_i)) = mean_i Σ_j τ_ij (log τ_ij − log q_ij). τ is constant,
// so the gradient is that of eq. 11's cross-entropy −Σ τ log q: ∂/∂z = (Σ_j τ_j) q − τ per row.
inline at::Tensor aace_loss(const at::Tensor& logits, const at::Tensor& labels, bool normalized) {
  at::Tensor tau = aace_target(logits, labels, normalized);
  at::Tensor kl = at::xlogy(tau, tau) - tau * logits.log_softmax(1);
  return kl.sum(1).mean();
}

}  // namespace flatface::perturbations
