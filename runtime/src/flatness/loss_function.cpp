#include "flatness/loss_function.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/autograd.h>

namespace flatface::flatness {

namespace {

// Undefined gradients (parameters the loss does not reach) as zeros.
ParamVector defined(ParamVector grads, const ParamVector& like) {
  for (std::size_t i = 0; i < grads.size(); ++i)
    if (!grads[i].defined()) grads[i] = at::zeros_like(like[i].detach());
  return grads;
}

void accumulate(ParamVector& sum, const ParamVector& part) {
  if (sum.empty()) {
    sum = part;
    return;
  }
  for (std::size_t i = 0; i < sum.size(); ++i) sum[i].add_(part[i]);
}

}  // namespace

double loss_value(const LossFunction& f) {
  at::NoGradGuard no_grad;
  double sum = 0;
  for (std::size_t b = 0; b < f.parts; ++b) sum += f.loss(b).item<double>();
  return sum / static_cast<double>(f.parts);
}

ParamVector gradient(const LossFunction& f) {
  at::AutoGradMode grad(true);
  ParamVector sum;
  for (std::size_t b = 0; b < f.parts; ++b) {
    at::Tensor loss = f.loss(b);
    ParamVector g = torch::autograd::grad({loss}, f.parameters, {}, /*retain_graph=*/false,
                                          /*create_graph=*/false, /*allow_unused=*/true);
    accumulate(sum, defined(std::move(g), f.parameters));
  }
  return scaled(sum, 1.0 / static_cast<double>(f.parts));
}

ParamVector hessian_vector_product(const LossFunction& f, const ParamVector& v) {
  at::AutoGradMode grad(true);
  ParamVector sum;
  for (std::size_t b = 0; b < f.parts; ++b) {
    at::Tensor loss = f.loss(b);
    // g with its graph, then ∇<g, v>: the second derivative along v.
    ParamVector g = torch::autograd::grad({loss}, f.parameters, {}, /*retain_graph=*/true,
                                          /*create_graph=*/true, /*allow_unused=*/true);
    at::Tensor inner;  // <g, v> over the gradients that still depend on w
    for (std::size_t i = 0; i < g.size(); ++i) {
      if (!g[i].defined() || !g[i].requires_grad()) continue;  // constant in w: its H rows are 0
      at::Tensor term = (g[i] * v[i].detach().to(g[i].scalar_type())).sum();
      inner = inner.defined() ? inner + term : term;
    }
    ParamVector hv(f.parameters.size());
    if (inner.defined())
      hv = torch::autograd::grad({inner}, f.parameters, {}, /*retain_graph=*/false,
                                 /*create_graph=*/false, /*allow_unused=*/true);
    for (auto& t : hv)
      if (t.defined()) t = t.detach();
    accumulate(sum, defined(std::move(hv), f.parameters));
  }
  return scaled(sum, 1.0 / static_cast<double>(f.parts));
}

ShiftedWeights::ShiftedWeights(const LossFunction& f, const ParamVector& offset)
    : f_(f), saved_(clone(f.parameters)) {
  assign(f_.parameters, add_scaled(saved_, 1.0, offset));
}

ShiftedWeights::~ShiftedWeights() { assign(f_.parameters, saved_); }

double loss_at_offset(const LossFunction& f, const ParamVector& offset) {
  ShiftedWeights shifted(f, offset);
  return loss_value(f);
}

ParamVector gradient_at_offset(const LossFunction& f, const ParamVector& offset) {
  ShiftedWeights shifted(f, offset);
  return gradient(f);
}

}  // namespace flatface::flatness
