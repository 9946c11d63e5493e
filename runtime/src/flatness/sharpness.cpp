#include "flatness/sharpness.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/ones_like.h>

#include <algorithm>
#include <cmath>

namespace flatface::flatness {

namespace {

ParamVector times(const ParamVector& a, const ParamVector& b) {
  at::NoGradGuard no_grad;
  ParamVector out;
  out.reserve(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) out.push_back(a[i] * b[i]);
  return out;
}

// Onto the ball ‖u‖ ≤ ρ.
ParamVector project(const ParamVector& u, double rho) {
  const double n = norm(u);
  return n > rho ? scaled(u, rho / n) : u;
}

}  // namespace

ParamVector asam_scale(const ParamVector& weights, double eta) {
  at::NoGradGuard no_grad;
  ParamVector t;
  t.reserve(weights.size());
  for (const auto& w : weights)
    t.push_back(w.dim() > 1 ? w.detach().abs() + eta : at::ones_like(w.detach()));
  return t;
}

SharpnessResult worst_case_sharpness(const LossFunction& f, const WorstCaseOptions& options,
                                     const std::function<void()>& on_step) {
  SharpnessResult r;
  r.loss = loss_value(f);
  // δ = T u; ∇_u L(w + Tu) = T ∇L(w + Tu). T = 1 for the plain ball.
  const ParamVector t = options.adaptive ? asam_scale(f.parameters, options.eta)
                                         : ParamVector{};
  auto scale = [&](const ParamVector& v) { return t.empty() ? v : times(t, v); };

  ParamVector g = scale(gradient(f));
  r.evaluations = 1;
  if (!(norm(g) > 0)) {  // at a stationary point: a seeded random start instead
    at::Generator generator = make_generator(options.seed);
    g = gaussian_like(f.parameters, generator);
  }
  ParamVector u = scaled(normalized(g), options.rho);  // u₀ = ρ T∇L / ‖T∇L‖
  double best = r.loss;  // δ = 0 is in the ball: the estimate is never below 0
  for (std::int64_t step = 0;; ++step) {
    const ParamVector delta = scale(u);
    {
      ShiftedWeights shifted(f, delta);
      best = std::max(best, loss_value(f));
      if (step == options.steps) break;
      g = scale(gradient(f));
    }
    ++r.evaluations;
    if (on_step) on_step();
    if (!(norm(g) > 0)) break;
    u = project(add_scaled(u, options.step_size * options.rho, normalized(g)), options.rho);
  }
  r.sharpness = best - r.loss;
  return r;
}

SharpnessResult average_case_sharpness(const LossFunction& f, const AverageCaseOptions& options,
                                       const std::function<void()>& on_sample) {
  SharpnessResult r;
  r.loss = loss_value(f);
  at::Generator generator = make_generator(options.seed);
  const double sigma = options.rho / std::sqrt(static_cast<double>(numel(f.parameters)));
  std::vector<double> rises;
  for (std::int64_t s = 0; s < options.samples; ++s) {
    const ParamVector delta = scaled(gaussian_like(f.parameters, generator), sigma);
    rises.push_back(loss_at_offset(f, delta) - r.loss);
    if (on_sample) on_sample();
  }
  r.evaluations = options.samples;
  double sum = 0;
  for (double x : rises) sum += x;
  const double n = static_cast<double>(rises.size());
  r.sharpness = rises.empty() ? NAN : sum / n;
  if (rises.size() >= 2) {
    double ss = 0;
    for (double x : rises) ss += (x - r.sharpness) * (x - r.sharpness);
    r.standard_error = std::sqrt(ss / (n - 1)) / std::sqrt(n);
  }
  return r;
}

}  // namespace flatface::flatness
