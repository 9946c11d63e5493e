// Tensor-list operations the perturbation strategies share: the margin loss, gradients, one
// global norm, and moving weights to w + ε and back.
#pragma once

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros_like.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "flatface/perturbation.hpp"

namespace flatface::perturbations {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// L_margin = CE(f(x, u), y), the batch mean (paper eq. 16).
inline at::Tensor margin_loss(const at::Tensor& logits, const at::Tensor& labels) {
  return at::cross_entropy_loss(logits, labels);
}

// The gradients left by the last backward; a parameter the loss did not reach counts as zero.
inline std::vector<at::Tensor> gradients(const std::vector<at::Tensor>& parameters) {
  std::vector<at::Tensor> g;
  g.reserve(parameters.size());
  for (const auto& p : parameters) g.push_back(p.grad().defined() ? p.grad() : at::zeros_like(p));
  return g;
}

// ‖(t_1, …, t_n)‖₂ over the whole list, as one 0-dim tensor on the device (no host sync).
inline at::Tensor global_norm(const std::vector<at::Tensor>& tensors) {
  return at::stack(at::_foreach_norm(tensors)).norm();
}

// The first pass of the strategies that follow ∇L_margin(w) (none, SAM, ASAM): L_margin(w), its
// gradient g over all parameters (the gradient buffers themselves) and ‖g‖₂.
struct MarginGradient {
  at::Tensor loss;
  std::vector<at::Tensor> grad;
  at::Tensor norm;
};
inline MarginGradient margin_gradient(StepContext& ctx) {
  ctx.zero_grad();
  MarginGradient m;
  m.loss = margin_loss(ctx.forward(Pass::first), ctx.labels());
  m.loss.backward();
  m.grad = gradients(ctx.parameters());
  m.norm = global_norm(m.grad);
  return m;
}

// w_saved ← w, then w ← w + ε (eq. 18 and 19 evaluate the gradient there).
inline void move_to_perturbed(StepContext& ctx, const std::vector<at::Tensor>& epsilon) {
  at::NoGradGuard no_grad;
  const auto& w = ctx.parameters();
  auto& saved = ctx.saved_weights();
  for (std::size_t i = 0; i < w.size(); ++i) saved[i].copy_(w[i]);
  at::_foreach_add_(w, epsilon);
}

// w ← w_saved, copied back rather than subtracting ε, so w returns bit-exactly.
inline void restore_weights(StepContext& ctx) {
  at::NoGradGuard no_grad;
  const auto& w = ctx.parameters();
  const auto& saved = ctx.saved_weights();
  for (std::size_t i = 0; i < w.size(); ++i) w[i].copy_(saved[i]);
}

// The second half shared by every two-pass strategy: step to w + ε, take ∇L_margin there, return
// to w exactly and let SGD apply that gradient at w. Returns L_margin(w + ε).
// ε is taken by value and usually lives in the first pass's gradient buffers (computed in place):
// it is released before the second backward allocates new gradients, so a step holds at most one
// extra copy of the parameters (w_saved) at any time.
inline at::Tensor descend_from_perturbed(StepContext& ctx, std::vector<at::Tensor> epsilon) {
  move_to_perturbed(ctx, epsilon);
  epsilon.clear();
  ctx.zero_grad();
  at::Tensor loss_perturbed = margin_loss(ctx.forward(Pass::second), ctx.labels());
  loss_perturbed.backward();
  restore_weights(ctx);
  ctx.optimizer_step();
  return loss_perturbed;
}

// Several 0-dim tensors read to the host with a single synchronisation.
inline std::vector<double> to_host(const std::vector<at::Tensor>& scalars) {
  std::vector<at::Tensor> as_double;
  as_double.reserve(scalars.size());
  for (const auto& s : scalars) as_double.push_back(s.detach().to(at::kDouble).reshape({}));
  at::Tensor host = at::stack(as_double).cpu();
  const double* v = host.data_ptr<double>();
  return std::vector<double>(v, v + host.numel());
}

// rho from the options: `fallback` when absent, never negative.
inline double rho_option(const Options& options, double fallback) {
  double rho = options.get_double("rho", fallback);
  if (!(rho >= 0)) {
    throw ConfigError(options.pos_of("rho").str() + ": rho must be >= 0 for " + options.what() +
                      " (got " + std::to_string(rho) + ")");
  }
  return rho;
}

}  // namespace flatface::perturbations
