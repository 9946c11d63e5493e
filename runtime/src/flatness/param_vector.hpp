// Vectors in parameter space: one tensor per parameter, shaped like it. The flatness measures
// (Hessian, sharpness, landscapes) move the weights along such vectors; every norm and inner
// product is global, over all tensors together, as for SAM's ε.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace flatface::flatness {

using ParamVector = std::vector<at::Tensor>;

// Σ_i <a_i, b_i> in float64.
double dot(const ParamVector& a, const ParamVector& b);
// sqrt(dot(v, v)).
double norm(const ParamVector& v);
// Detached copies.
ParamVector clone(const ParamVector& v);
ParamVector zeros_like(const ParamVector& v);
// a + s b, new tensors.
ParamVector add_scaled(const ParamVector& a, double s, const ParamVector& b);
// v * s, new tensors.
ParamVector scaled(const ParamVector& v, double s);
// v / ‖v‖ (v itself when its norm is 0).
ParamVector normalized(const ParamVector& v);
// v minus its projections on `basis`, whose vectors are orthonormal (Gram-Schmidt, one pass).
ParamVector orthogonalized(const ParamVector& v, const std::vector<ParamVector>& basis);

// Random vectors shaped like `like`, drawn on the CPU from `generator` and moved to each tensor's
// device and dtype: the same seed gives the same vector on any device.
ParamVector gaussian_like(const ParamVector& like, at::Generator& generator);
ParamVector rademacher_like(const ParamVector& like, at::Generator& generator);  // ±1, p = ½
at::Generator make_generator(std::uint64_t seed);

// Total number of scalars.
std::int64_t numel(const ParamVector& v);

// Writes `values` into the parameters in place, under no-grad (the tensors stay the same
// autograd leaves).
void assign(const ParamVector& parameters, const ParamVector& values);

}  // namespace flatface::flatness
