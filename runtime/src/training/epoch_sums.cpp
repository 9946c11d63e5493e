#include "training/epoch_sums.hpp"

#include <cmath>
#include <optional>

namespace flatface {

std::vector<double> EpochSums::pack() const {
  return {loss, perturbation_loss, loss_perturbed, grad_norm, epsilon_norm,      correct,
          seen, step_seconds,      steps,          last_lr,   second_pass_steps, grad_norm_steps};
}

EpochSums EpochSums::unpack(const std::vector<double>& v) {
  EpochSums s;
  if (v.size() != 10 && v.size() != 12) return s;
  s.loss = v[0], s.perturbation_loss = v[1], s.loss_perturbed = v[2], s.grad_norm = v[3];
  s.epsilon_norm = v[4], s.correct = v[5], s.seen = v[6], s.step_seconds = v[7], s.steps = v[8];
  s.last_lr = v[9];
  if (v.size() == 12) {
    s.second_pass_steps = v[10], s.grad_norm_steps = v[11];
  } else {  // a checkpoint of before the counts: every strategy then took 1 or 2 passes always
    s.second_pass_steps = std::isnan(s.loss_perturbed) ? 0 : s.steps;
    s.grad_norm_steps = std::isnan(s.grad_norm) ? 0 : s.steps;
    if (s.second_pass_steps == 0) s.perturbation_loss = s.loss_perturbed = s.epsilon_norm = 0;
    if (s.grad_norm_steps == 0) s.grad_norm = 0;
  }
  return s;
}

void EpochSums::add(const StepStats& st, double lr, std::int64_t batch, double dt) {
  loss += st.loss;
  if (st.second_pass) {
    perturbation_loss += *st.perturbation_loss;
    loss_perturbed += *st.loss_perturbed;
    epsilon_norm += *st.epsilon_norm;
    second_pass_steps += 1;
  }
  if (st.grad_norm) {
    grad_norm += *st.grad_norm;
    grad_norm_steps += 1;
  }
  seen += static_cast<double>(batch);
  step_seconds += dt;
  steps += 1;
  last_lr = lr;
}

EpochMetrics EpochSums::metrics(std::int64_t epoch) const {
  EpochMetrics m;
  m.epoch = epoch;
  m.lr = last_lr;
  m.loss = loss / steps;
  m.perturbation_loss = perturbation_loss / second_pass_steps;  // NaN when none
  m.loss_perturbed = loss_perturbed / second_pass_steps;
  m.grad_norm = grad_norm / grad_norm_steps;
  m.epsilon_norm = epsilon_norm / second_pass_steps;
  m.second_pass_fraction = second_pass_steps / steps;
  m.train_accuracy = correct / seen;
  m.images_per_second = seen / step_seconds;
  return m;
}

std::string step_problem(const StepStats& s) {
  struct Reported {
    const char* name;
    std::optional<double> value;
    bool of_second_pass;
  };
  const Reported reported[] = {{"loss", s.loss, false},
                               {"perturbation_loss", s.perturbation_loss, true},
                               {"loss_perturbed", s.loss_perturbed, true},
                               {"grad_norm", s.grad_norm, false},
                               {"epsilon_norm", s.epsilon_norm, true}};
  for (const Reported& r : reported) {
    if (r.value && !std::isfinite(*r.value))
      return "non-finite " + std::string(r.name) + " (" + std::to_string(*r.value) + ")";
    if (s.second_pass && r.of_second_pass && !r.value)
      return "a second pass that reported no " + std::string(r.name);
  }
  return "";
}

}  // namespace flatface
