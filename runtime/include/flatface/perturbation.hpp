// A perturbation strategy performs one optimisation step (paper eqs. 15-21). The host hands it a
// StepContext; the strategy decides how many forward/backward passes to make, where, and on which
// samples of the batch.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "flatface/collectives.hpp"
#include "flatface/options.hpp"

namespace flatface {

enum class Pass { first, second };

// Where a step stands in its run, for strategies whose behaviour follows a schedule (a period, a
// threshold that moves over training, a radius that follows the learning rate).
struct StepProgress {
  std::int64_t step = 0;         // this step's index in the run, from 0
  std::int64_t total_steps = 0;  // steps in the whole run; 0 where the host does not know
  double lr = 0;                 // the learning rate this step applies
  double base_lr = 0;            // the schedule's peak rate (train.lr)
};

// What the host offers a strategy for one batch.
class StepContext {
 public:
  virtual ~StepContext() = default;
  // Margin logits [N,C] at the current weights, with autograd (under at::NoGradGuard: without).
  // The first pass updates BN running statistics and head statistics and records training
  // accuracy; the second pass follows the configured BN policy and leaves head statistics alone.
  virtual at::Tensor forward(Pass pass) = 0;
  // The labels of the selected samples (the whole batch unless select_samples() narrowed it).
  virtual const at::Tensor& labels() const = 0;
  // Restricts the following passes, and labels(), to `rows` of the batch (int64 indices on the
  // batch's device), e.g. a second pass on the samples whose loss rises most; an undefined tensor
  // selects the whole batch again. Every step starts on the whole batch.
  virtual void select_samples(const at::Tensor& rows) = 0;
  // All trainable parameters: backbone and class weights (one global norm covers them all).
  virtual const std::vector<at::Tensor>& parameters() const = 0;
  virtual void zero_grad() = 0;
  // Applies the base optimizer (SGD) to the gradients currently stored in `parameters()`. In a
  // data-parallel run the host first averages them over the ranks (the global batch's gradient).
  virtual void optimizer_step() = 0;
  // Data-parallel runs: averages the gradients now in `parameters()` over the ranks, so that they
  // are the gradient of the global batch. A strategy calls it after its first backward pass and
  // before it forms ε from that gradient (margin_gradient() does); the host makes it a no-op in
  // one process and under perturbation.epsilon = "local" (ε from each rank's own samples, the
  // SAM paper's m-sharpness). Strategies that never call it form ε locally.
  virtual void share_first_gradient() {}
  // The ranks that train the run, for a strategy whose decision must be the same on every rank
  // (AE-SAM's vote on a second pass); one process outside data-parallel training.
  virtual Collectives& collectives() { return one_process(); }
  // The margin head's own loss term r [N] for the rows of the last forward() (MagFace's
  // regulariser), with autograd as that pass had it; undefined where the head has none. A
  // strategy takes L_margin = mean_i (CE_i + r_i) through margin_loss(ctx, logits) (step_ops.hpp)
  // right after the forward() whose logits it scores.
  virtual at::Tensor regularizer() const { return {}; }
  // Scratch buffers shaped like `parameters()` (w_saved), allocated once per run and reused every
  // step: the one extra copy of the parameters a two-pass strategy may hold. ε itself is best
  // formed in place in the gradient buffers of the first pass.
  virtual std::vector<at::Tensor>& saved_weights() = 0;
  virtual StepProgress progress() const = 0;
};

// What a step reports. A statistic the step did not compute stays empty (std::nullopt): AACE never
// forms grad L_margin(w), a one-pass step has no loss at w + epsilon. Every value a step does
// report must be finite, or the run fails naming the statistic; a step that made a second pass
// reports the three statistics of that pass. (The result file stores "not computed" as NaN.)
struct StepStats {
  double loss = 0;                          // L_margin at w
  std::optional<double> perturbation_loss;  // the loss whose gradient defines epsilon (L_AACE)
  std::optional<double> loss_perturbed;     // L_margin at w + epsilon
  std::optional<double> grad_norm;          // ||grad L_margin(w)||_2 over all parameters
  std::optional<double> epsilon_norm;       // ||epsilon||_2
  bool second_pass = false;                 // whether this step made a second pass
};

class Perturbation {
 public:
  virtual ~Perturbation() = default;
  virtual StepStats step(StepContext& ctx) = 0;
  // Whether the strategy makes a second pass, on every step or on some (LookSAM, AE-SAM); drives
  // the benchmarks' choice of the plain step. StepStats::second_pass says what one step did.
  virtual bool two_pass() const = 0;
  // What the strategy carries from one step to the next (running statistics, a stored
  // direction), saved in checkpoints so that a resumed run continues as if it had never stopped.
  // load_state() gets the tensors state() returned, on the parameters' device. Stateless
  // strategies keep these defaults.
  virtual std::vector<at::Tensor> state() const { return {}; }
  virtual void load_state(const std::vector<at::Tensor>& state) {
    if (!state.empty()) {
      throw RuntimeError("this perturbation strategy keeps no state, but was given " +
                         std::to_string(state.size()) + " tensors");
    }
  }
};

struct PerturbationArgs {
  Options options;         // the setup's perturbation table, less `plugin`; `rho` is a number
  std::uint64_t seed = 0;  // the run's seed, for strategies that draw random numbers
};

using PerturbationFactory = std::unique_ptr<Perturbation> (*)(const PerturbationArgs&);

}  // namespace flatface
