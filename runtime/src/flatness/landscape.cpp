#include "flatness/landscape.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/core/grad_mode.h>

namespace flatface::flatness {

ParamVector filter_normalized_direction(const ParamVector& weights, at::Generator& generator) {
  at::NoGradGuard no_grad;
  ParamVector d = gaussian_like(weights, generator);
  for (std::size_t i = 0; i < d.size(); ++i) {
    const at::Tensor w = weights[i].detach();
    if (w.dim() <= 1) {
      d[i].zero_();
      continue;
    }
    // Per filter (row of the tensor flattened after dim 0): ‖w_i‖ / ‖d_i‖.
    at::Tensor w_norm = w.reshape({w.size(0), -1}).norm(2, {1}, /*keepdim=*/true);
    at::Tensor d_rows = d[i].view({w.size(0), -1});
    at::Tensor d_norm = d_rows.norm(2, {1}, /*keepdim=*/true);
    d_rows.mul_(w_norm / (d_norm + 1e-10));
  }
  return d;
}

std::vector<double> landscape_1d(const LossFunction& f, const ParamVector& d,
                                 const std::vector<double>& alphas,
                                 const std::function<void()>& on_point) {
  std::vector<double> out;
  out.reserve(alphas.size());
  for (double a : alphas) {
    out.push_back(loss_at_offset(f, scaled(d, a)));
    if (on_point) on_point();
  }
  return out;
}

std::vector<double> landscape_2d(const LossFunction& f, const ParamVector& d1,
                                 const ParamVector& d2, const std::vector<double>& alphas,
                                 const std::vector<double>& betas,
                                 const std::function<void()>& on_point) {
  std::vector<double> out;
  out.reserve(alphas.size() * betas.size());
  for (double a : alphas) {
    for (double b : betas) {
      out.push_back(loss_at_offset(f, add_scaled(scaled(d1, a), b, d2)));
      if (on_point) on_point();
    }
  }
  return out;
}

std::vector<double> grid(double from, double to, std::int64_t n) {
  std::vector<double> out;
  if (n <= 0) return out;
  if (n == 1) return {from};
  for (std::int64_t i = 0; i < n; ++i)
    out.push_back(from + (to - from) * static_cast<double>(i) / static_cast<double>(n - 1));
  return out;
}

ParamVector interpolate(const ParamVector& a, const ParamVector& b, double t) {
  at::NoGradGuard no_grad;
  ParamVector out;
  out.reserve(a.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    out.push_back(a[i].detach() * (1 - t) + b[i].detach() * t);
  return out;
}

}  // namespace flatface::flatness
