#include "flatness/hessian.hpp"

#include <cmath>

namespace flatface::flatness {

EigenResult top_eigenvalues(const LossFunction& f, const EigenOptions& options,
                            const ProductCallback& progress) {
  EigenResult result;
  at::Generator generator = make_generator(options.seed);
  const std::int64_t most = options.top_k * options.max_iterations;
  std::int64_t done = 0;
  for (std::int64_t k = 0; k < options.top_k; ++k) {
    ParamVector v = normalized(orthogonalized(gaussian_like(f.parameters, generator),
                                              result.eigenvectors));
    double eigenvalue = NAN;
    std::int64_t iterations = 0;
    while (iterations < options.max_iterations) {
      // Deflation: stay orthogonal to the eigenvectors already found.
      v = normalized(orthogonalized(v, result.eigenvectors));
      ParamVector hv = hessian_vector_product(f, v);
      ++iterations;
      if (progress) progress(++done, most);
      const double estimate = dot(hv, v);  // Rayleigh quotient vᵀHv, ‖v‖ = 1
      v = normalized(hv);
      const bool settled = !std::isnan(eigenvalue) &&
                           std::abs(estimate - eigenvalue) / (std::abs(eigenvalue) + 1e-6) <
                               options.tolerance;
      eigenvalue = estimate;
      if (settled) break;
    }
    result.eigenvalues.push_back(eigenvalue);
    result.iterations.push_back(iterations);
    result.eigenvectors.push_back(normalized(orthogonalized(v, result.eigenvectors)));
  }
  return result;
}

TraceResult hutchinson_trace(const LossFunction& f, const TraceOptions& options,
                             const ProductCallback& progress) {
  at::Generator generator = make_generator(options.seed);
  std::vector<double> samples;
  double mean = NAN;
  while (static_cast<std::int64_t>(samples.size()) < options.max_samples) {
    ParamVector v = rademacher_like(f.parameters, generator);
    samples.push_back(dot(hessian_vector_product(f, v), v));  // vᵀHv
    if (progress) progress(static_cast<std::int64_t>(samples.size()), options.max_samples);
    double sum = 0;
    for (double s : samples) sum += s;
    const double next = sum / static_cast<double>(samples.size());
    const bool settled = !std::isnan(mean) &&
                         static_cast<std::int64_t>(samples.size()) >= options.min_samples &&
                         std::abs(next - mean) / (std::abs(mean) + 1e-6) < options.tolerance;
    mean = next;
    if (settled) break;
  }
  TraceResult r;
  r.samples = static_cast<std::int64_t>(samples.size());
  r.mean = mean;
  r.standard_error = NAN;
  if (r.samples >= 2) {
    double ss = 0;
    for (double s : samples) ss += (s - mean) * (s - mean);
    r.standard_error = std::sqrt(ss / static_cast<double>(r.samples - 1)) /
                       std::sqrt(static_cast<double>(r.samples));  // sample std / √n
  }
  return r;
}

}  // namespace flatface::flatness
