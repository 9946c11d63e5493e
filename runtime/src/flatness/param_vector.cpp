#include "flatness/param_vector.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros_like.h>

#include <cmath>

namespace flatface::flatness {

double dot(const ParamVector& a, const ParamVector& b) {
  at::NoGradGuard no_grad;
  double sum = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    sum += (a[i].to(at::kDouble) * b[i].to(at::kDouble)).sum().item<double>();
  return sum;
}

double norm(const ParamVector& v) { return std::sqrt(dot(v, v)); }

ParamVector clone(const ParamVector& v) {
  ParamVector out;
  out.reserve(v.size());
  for (const auto& t : v) out.push_back(t.detach().clone());
  return out;
}

ParamVector zeros_like(const ParamVector& v) {
  ParamVector out;
  out.reserve(v.size());
  for (const auto& t : v) out.push_back(at::zeros_like(t.detach()));
  return out;
}

ParamVector add_scaled(const ParamVector& a, double s, const ParamVector& b) {
  at::NoGradGuard no_grad;
  ParamVector out;
  out.reserve(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) out.push_back(a[i].detach() + s * b[i].detach());
  return out;
}

ParamVector scaled(const ParamVector& v, double s) {
  at::NoGradGuard no_grad;
  ParamVector out;
  out.reserve(v.size());
  for (const auto& t : v) out.push_back(t.detach() * s);
  return out;
}

ParamVector normalized(const ParamVector& v) {
  const double n = norm(v);
  return n > 0 ? scaled(v, 1.0 / n) : clone(v);
}

ParamVector orthogonalized(const ParamVector& v, const std::vector<ParamVector>& basis) {
  ParamVector out = clone(v);
  for (const auto& b : basis) out = add_scaled(out, -dot(out, b), b);
  return out;
}

at::Generator make_generator(std::uint64_t seed) { return at::detail::createCPUGenerator(seed); }

ParamVector gaussian_like(const ParamVector& like, at::Generator& generator) {
  ParamVector out;
  out.reserve(like.size());
  for (const auto& t : like)
    out.push_back(at::randn(t.sizes(), generator, at::TensorOptions().dtype(at::kDouble))
                      .to(t.device(), t.scalar_type()));
  return out;
}

ParamVector rademacher_like(const ParamVector& like, at::Generator& generator) {
  ParamVector out;
  out.reserve(like.size());
  for (const auto& t : like) {
    at::Tensor bits = at::randint(0, 2, t.sizes(), generator, at::TensorOptions().dtype(at::kLong));
    out.push_back((bits * 2 - 1).to(t.device(), t.scalar_type()));
  }
  return out;
}

std::int64_t numel(const ParamVector& v) {
  std::int64_t n = 0;
  for (const auto& t : v) n += t.numel();
  return n;
}

void assign(const ParamVector& parameters, const ParamVector& values) {
  at::NoGradGuard no_grad;
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    at::Tensor p = parameters[i];  // shares the storage: copy_ writes the parameter itself
    p.copy_(values[i]);
  }
}

}  // namespace flatface::flatness
