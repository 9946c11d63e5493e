// The operations a perturbation strategy is made of (paper eqs. 15-21), over the parameter list
// that StepContext hands out: L_margin and its gradient (the first pass), one global norm, SAM's ε,
// the move to w + ε and back, and the second pass that descends from there. A strategy written
// from these reads like its equations; sam.cpp is the shortest example. StepReport gathers what a
// step reports (StepStats) and reads it to the host at once. Header-only.
#pragma once

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/dot.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros_like.h>

#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "flatface/option_checks.hpp"
#include "flatface/perturbation.hpp"

namespace flatface::perturbations {

// CE(f(x, u), y), the batch mean (paper eq. 16): the cross-entropy alone, without a head's own
// term. Strategies take margin_loss(ctx, logits) below.
inline at::Tensor margin_loss(const at::Tensor& logits, const at::Tensor& labels) {
  return at::cross_entropy_loss(logits, labels);
}

// mean_i (CE(z_i, y_i) + r_i): the cross-entropy and the head's own term r [N] (undefined: none).
inline at::Tensor margin_loss(const at::Tensor& logits, const at::Tensor& labels,
                              const at::Tensor& regularizer) {
  at::Tensor loss = margin_loss(logits, labels);
  return regularizer.defined() ? loss + regularizer.mean() : loss;
}

// L_margin per sample, ℓ_i = CE(z_i, y_i) + r_i, for the logits of the last ctx.forward(): r is
// the head's own term (MagFace's λ_g g(a_i); none for most heads). ESAM ranks samples by it.
inline at::Tensor per_sample_margin_loss(StepContext& ctx, const at::Tensor& logits) {
  at::Tensor loss = at::cross_entropy_loss(logits, ctx.labels(), {}, at::Reduction::None);
  at::Tensor r = ctx.regularizer();
  return r.defined() ? loss + r : loss;
}

// L_margin = mean_i ℓ_i, the loss every strategy descends, for the logits of the last
// ctx.forward() (the head's term belongs to that pass's rows and weights).
inline at::Tensor margin_loss(StepContext& ctx, const at::Tensor& logits) {
  return margin_loss(logits, ctx.labels(), ctx.regularizer());
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

// Σ_i ⟨a_i, b_i⟩ over the whole list, as one 0-dim tensor on the device.
inline at::Tensor global_dot(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  std::vector<at::Tensor> terms;
  terms.reserve(a.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    terms.push_back(a[i].reshape(-1).dot(b[i].reshape(-1)));
  return at::stack(terms).sum();
}

// The first pass of the strategies that follow ∇L_margin(w) (none, SAM, ASAM, ...): L_margin(w),
// its gradient g over all parameters (the gradient buffers themselves) and ‖g‖₂. With
// `keep_logits` the logits stay, with their graph, for a second backward from the same forward
// pass (AACE's direction); otherwise they are released before the backward pass.
struct MarginGradient {
  at::Tensor loss;
  std::vector<at::Tensor> grad;
  at::Tensor norm;
  at::Tensor logits;  // only with keep_logits
};
inline MarginGradient margin_gradient(StepContext& ctx, bool keep_logits = false) {
  ctx.zero_grad();
  MarginGradient m;
  if (keep_logits) {
    m.logits = ctx.forward(Pass::first);
    m.loss = margin_loss(ctx, m.logits);
    m.loss.backward({}, /*retain_graph=*/true);
  } else {
    m.loss = margin_loss(ctx, ctx.forward(Pass::first));
    m.loss.backward();
  }
  m.loss = m.loss.detach();  // the logits alone keep the graph, and only when asked
  ctx.share_first_gradient();  // the global batch's g in a data-parallel run (epsilon = "global")
  m.grad = gradients(ctx.parameters());
  m.norm = global_norm(m.grad);
  return m;
}

// SAM's ε = ρ g / (‖g‖₂ + 1e-12) (paper eq. 17), formed in place in g (the gradient buffers).
inline void scale_to_sam_epsilon(std::vector<at::Tensor>& g, const at::Tensor& g_norm, double rho) {
  at::NoGradGuard no_grad;
  at::Tensor scale = rho / (g_norm + 1e-12);
  for (auto& e : g) e.mul_(scale);
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

// What the second pass measured, as 0-dim tensors on the device.
struct PerturbedPass {
  at::Tensor loss;          // L_margin(w + ε)
  at::Tensor epsilon_norm;  // ‖ε‖₂
};

// The second pass: take ‖ε‖₂, step to w + ε, take g_s = ∇L_margin(w + ε) there and return to w
// exactly, leaving g_s in the gradient buffers.
// ε is taken by value and usually lives in the first pass's gradient buffers (computed in place):
// it is released before the second backward allocates new gradients, so a step holds at most one
// extra copy of the parameters (w_saved) at any time.
inline PerturbedPass gradient_at_perturbed(StepContext& ctx, std::vector<at::Tensor> epsilon) {
  PerturbedPass pass;
  pass.epsilon_norm = global_norm(epsilon);
  move_to_perturbed(ctx, epsilon);
  epsilon.clear();
  ctx.zero_grad();
  pass.loss = margin_loss(ctx, ctx.forward(Pass::second));
  pass.loss.backward();
  restore_weights(ctx);
  return pass;
}

// The second half shared by the two-pass strategies that step on g_s as it is (SAM, AACE, ASAM):
// SGD applies ∇L_margin(w + ε) at w (eqs. 18-19).
inline PerturbedPass descend_from_perturbed(StepContext& ctx, std::vector<at::Tensor> epsilon) {
  PerturbedPass pass = gradient_at_perturbed(ctx, std::move(epsilon));
  ctx.optimizer_step();
  return pass;
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

// What a step reports, gathered as 0-dim tensors on the device and read by to_host() with one
// synchronisation. A statistic never given stays "not computed" in StepStats, e.g.
//   return StepReport(g.loss).grad_norm(g.norm).second_pass(g.loss, perturbed).to_host();
class StepReport {
 public:
  explicit StepReport(at::Tensor loss) : loss_(std::move(loss)) {}  // L_margin(w)

  // ‖∇L_margin(w)‖₂ over all parameters.
  StepReport& grad_norm(at::Tensor norm) {
    grad_norm_ = std::move(norm);
    return *this;
  }
  // A second pass: the loss whose gradient defined ε (L_margin itself, or L_AACE) and what the
  // pass measured at w + ε.
  StepReport& second_pass(at::Tensor perturbation_loss, const PerturbedPass& pass) {
    perturbation_loss_ = std::move(perturbation_loss);
    loss_perturbed_ = pass.loss;
    epsilon_norm_ = pass.epsilon_norm;
    second_pass_ = true;
    return *this;
  }

  StepStats to_host() const {
    StepStats stats;
    const std::pair<const at::Tensor*, std::optional<double>*> given[] = {
        {&perturbation_loss_, &stats.perturbation_loss},
        {&loss_perturbed_, &stats.loss_perturbed},
        {&grad_norm_, &stats.grad_norm},
        {&epsilon_norm_, &stats.epsilon_norm}};
    std::vector<at::Tensor> scalars{loss_};
    for (const auto& [tensor, value] : given)
      if (tensor->defined()) scalars.push_back(*tensor);
    const std::vector<double> v = perturbations::to_host(scalars);
    stats.loss = v[0];
    std::size_t next = 1;
    for (const auto& [tensor, value] : given)
      if (tensor->defined()) *value = v[next++];
    stats.second_pass = second_pass_;
    return stats;
  }

 private:
  at::Tensor loss_, grad_norm_, perturbation_loss_, loss_perturbed_, epsilon_norm_;
  bool second_pass_ = false;
};

// rho from the options: `fallback` when absent, never negative.
inline double rho_option(const Options& options, double fallback) {
  return nonnegative_option(options, "rho", fallback);
}

// Where a strategy that can follow either looks for w + ε: SAM's ascent on L_margin (eq. 17) or
// AACE's on L_AACE (eq. 20), from the option `direction` ("sam" | "aace").
enum class Direction { sam, aace };
inline Direction direction_option(const Options& options) {
  return options.get_choice("direction", "sam", {"sam", "aace"}) == "aace" ? Direction::aace
                                                                           : Direction::sam;
}

}  // namespace flatface::perturbations
