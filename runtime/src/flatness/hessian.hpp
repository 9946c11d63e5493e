// The Hessian of the loss, seen through Hessian-vector products only: its top eigenvalues by
// power iteration with deflation, and its trace by Hutchinson's estimator (the two measures of
// PyHessian, Yao et al. 2020).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "flatness/loss_function.hpp"

namespace flatface::flatness {

// Called after each Hessian-vector product: (products done, products at most).
using ProductCallback = std::function<void(std::int64_t done, std::int64_t most)>;

struct EigenOptions {
  std::int64_t top_k = 1;
  // Stop when |λ_t − λ_{t−1}| / (|λ_{t−1}| + 1e-6) < tolerance, or after max_iterations (PyHessian's
  // rule and defaults).
  double tolerance = 1e-3;
  std::int64_t max_iterations = 100;
  std::uint64_t seed = 0;  // of the Gaussian start vectors
};

struct EigenResult {
  std::vector<double> eigenvalues;          // largest magnitude first, as found
  std::vector<std::int64_t> iterations;     // products spent on each
  std::vector<ParamVector> eigenvectors;    // unit norm
};

// For each of the top_k: v ← random unit vector orthogonalised against the eigenvectors found;
// repeat { v ← v ⊥ found; Hv; λ = vᵀHv; v ← Hv / ‖Hv‖ } until λ settles. Power iteration finds the
// eigenvalues of largest magnitude (a negative one ranks by its size).
EigenResult top_eigenvalues(const LossFunction& f, const EigenOptions& options,
                            const ProductCallback& progress = {});

struct TraceOptions {
  // Stop when the running mean changes by less than tolerance relative to it
  // (|m_t − m_{t−1}| / (|m_{t−1}| + 1e-6), PyHessian's rule), after at least min_samples, or after
  // max_samples.
  double tolerance = 1e-3;
  std::int64_t max_samples = 100;
  std::int64_t min_samples = 2;  // a standard error needs two
  std::uint64_t seed = 0;
};

struct TraceResult {
  double mean = 0;            // (1/n) Σ vᵀHv
  double standard_error = 0;  // sample std / √n (NaN for n < 2)
  std::int64_t samples = 0;
};

// Hutchinson (1989): tr(H) = E[vᵀHv] for v with independent Rademacher (±1) entries.
TraceResult hutchinson_trace(const LossFunction& f, const TraceOptions& options,
                             const ProductCallback& progress = {});

}  // namespace flatface::flatness
