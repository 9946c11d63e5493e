// A perturbation strategy performs one optimisation step (paper eqs. 15-21). The host hands it a
// StepContext; the strategy decides how many forward/backward passes to make and where.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <vector>

#include "flatface/options.hpp"

namespace flatface {

enum class Pass { first, second };

// What the host offers a strategy for one batch.
class StepContext {
 public:
  virtual ~StepContext() = default;
  // Margin logits [N,C] at the current weights, with autograd. The first pass updates BN running
  // statistics and head statistics and records training accuracy; the second pass follows the
  // configured BN policy and leaves head statistics alone.
  virtual at::Tensor forward(Pass pass) = 0;
  virtual const at::Tensor& labels() const = 0;
  // All trainable parameters: backbone and class weights (one global norm covers them all).
  virtual const std::vector<at::Tensor>& parameters() const = 0;
  virtual void zero_grad() = 0;
  // Applies the base optimizer (SGD) to the gradients currently stored in `parameters()`.
  virtual void optimizer_step() = 0;
  // Scratch buffers shaped like `parameters()` (w_saved), allocated once per run and reused every
  // step: the one extra copy of the parameters a two-pass strategy may hold. ε itself is best
  // formed in place in the gradient buffers of the first pass.
  virtual std::vector<at::Tensor>& saved_weights() = 0;
};

// What a step reports (NaN where a value does not apply).
struct StepStats {
  double loss = 0;                // L_margin at w
  double perturbation_loss = 0;   // the loss whose gradient defines epsilon (AACE: L_AACE)
  double loss_perturbed = 0;      // L_margin at w + epsilon
  double grad_norm = 0;           // ||grad L_margin(w)||_2 over all parameters
  double epsilon_norm = 0;        // ||epsilon||_2
};

class Perturbation {
 public:
  virtual ~Perturbation() = default;
  virtual StepStats step(StepContext& ctx) = 0;
  // Whether the strategy needs a second pass (drives the BN scratch state and the benchmarks).
  virtual bool two_pass() const = 0;
};

struct PerturbationArgs {
  Options options;  // the setup's perturbation table, less `plugin`; `rho` is already a number
};

using PerturbationFactory = std::unique_ptr<Perturbation> (*)(const PerturbationArgs&);

}  // namespace flatface
