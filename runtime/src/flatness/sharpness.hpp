// Sharpness of a minimum in a ρ-ball (Keskar et al. 2017; Foret et al. 2021): how much the loss
// rises when the weights move by at most ρ, in the worst case (found by projected gradient
// ascent) and on average (Gaussian moves). The adaptive variant measures the ball in the
// coordinates of ASAM (Kwon et al. 2021): ‖T⁻¹δ‖₂ ≤ ρ with T = diag(|w| + η) on weight tensors
// (dim > 1) and 1 on biases and BN parameters, as the `asam` strategy perturbs.
#pragma once

#include <cstdint>
#include <functional>

#include "flatness/loss_function.hpp"

namespace flatface::flatness {

struct WorstCaseOptions {
  double rho = 0.05;
  std::int64_t steps = 5;  // ascent steps after the start
  // Each step moves by step_size·ρ along the normalised ascent direction, then projects back
  // onto the ball: u ← Π(u + step_size·ρ·g/‖g‖), g = T ∇L(w + Tu).
  double step_size = 1.0;
  bool adaptive = false;
  double eta = 0.01;       // T = |w| + η (adaptive only)
  std::uint64_t seed = 0;  // start direction when ∇L(w) = 0
};

struct SharpnessResult {
  double loss = 0;               // L(w)
  double sharpness = 0;          // worst case: max over the iterates (and δ = 0) of L(w + δ) − L(w)
  double standard_error = NAN;   // average case only
  std::int64_t evaluations = 0;  // loss evaluations (worst case: gradients) made
};

// max_{‖T⁻¹δ‖₂ ≤ ρ} L(w + δ) − L(w), from below: projected gradient ascent in u = T⁻¹δ starting
// at u₀ = ρ T∇L(w)/‖T∇L(w)‖ (SAM's and ASAM's ε), the largest loss met along the way (w itself
// included, so the estimate is ≥ 0 like the maximum it bounds from below).
SharpnessResult worst_case_sharpness(const LossFunction& f, const WorstCaseOptions& options,
                                     const std::function<void()>& on_step = {});

struct AverageCaseOptions {
  double rho = 0.05;
  std::int64_t samples = 10;
  std::uint64_t seed = 0;
};

// E[L(w + δ)] − L(w) with δ ~ N(0, σ²I), σ = ρ/√d (d parameters), so that E‖δ‖₂² = ρ²; the mean
// and standard error over `samples` seeded draws.
SharpnessResult average_case_sharpness(const LossFunction& f, const AverageCaseOptions& options,
                                       const std::function<void()>& on_sample = {});

// The scaling T of the adaptive ball: |w| + η on tensors with dim > 1, 1 elsewhere.
ParamVector asam_scale(const ParamVector& weights, double eta);

}  // namespace flatface::flatness
