// What the steps of one epoch add up to: the partial sums the trainer keeps while the epoch runs
// (and in the checkpoint, so that an interrupted epoch resumes exactly), the epoch's metrics
// made from them, and the check that a step's report is fit to be summed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flatface/perturbation.hpp"
#include "results/result_store.hpp"

namespace flatface {

// The statistics of the perturbed pass are summed over the steps that made one, the gradient norm
// over the steps that computed it.
struct EpochSums {
  double loss = 0, perturbation_loss = 0, loss_perturbed = 0, grad_norm = 0, epsilon_norm = 0;
  double correct = 0, seen = 0, step_seconds = 0, steps = 0, last_lr = 0;
  double second_pass_steps = 0, grad_norm_steps = 0;

  // As the checkpoint keeps them (TrainingState::accumulators).
  std::vector<double> pack() const;
  static EpochSums unpack(const std::vector<double>& v);
  // `st` has passed step_problem: a second pass reported its three statistics.
  void add(const StepStats& st, double lr, std::int64_t batch, double dt);
  // Epoch `epoch` (1-based)'s means; a statistic no step computed is NaN. Evaluation and wall
  // time are the trainer's to fill.
  EpochMetrics metrics(std::int64_t epoch) const;
};

// What is wrong with a step's report, naming the statistic, or "" when nothing is. A statistic
// the step did not compute is fine (AACE does not take grad L_margin(w)); one it computed must be
// finite, and a step that made a second pass must report that pass's three statistics.
std::string step_problem(const StepStats& s);

}  // namespace flatface
