// The object every flatness measure works on: a scalar loss of a list of parameter tensors,
// L(w) = (1/B) Σ_b L_b(w) over B fixed parts (batches). A real model (model_loss.hpp) and a
// closed-form test (½ wᵀAw) go through the same code.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <functional>

#include "flatness/param_vector.hpp"

namespace flatface::flatness {

struct LossFunction {
  // The autograd leaves w, moved in place (assign()) by the measures and restored by them.
  ParamVector parameters;
  std::size_t parts = 1;
  // L_b at the current parameters: a 0-dim tensor, differentiable with respect to them.
  std::function<at::Tensor(std::size_t part)> loss;
};

// L(w), without autograd.
double loss_value(const LossFunction& f);
// ∇L(w) (zeros for a parameter the loss does not use).
ParamVector gradient(const LossFunction& f);
// H v = ∇_w <∇L(w), v> by double backward (Pearlmutter 1994), part by part.
ParamVector hessian_vector_product(const LossFunction& f, const ParamVector& v);

// Moves f's parameters to w + offset for one scope and puts back the exact values it found.
class ShiftedWeights {
 public:
  ShiftedWeights(const LossFunction& f, const ParamVector& offset);
  ~ShiftedWeights();
  ShiftedWeights(const ShiftedWeights&) = delete;
  ShiftedWeights& operator=(const ShiftedWeights&) = delete;

 private:
  const LossFunction& f_;
  ParamVector saved_;
};

// L(w + offset) - without changing w.
double loss_at_offset(const LossFunction& f, const ParamVector& offset);
ParamVector gradient_at_offset(const LossFunction& f, const ParamVector& offset);

}  // namespace flatface::flatness
