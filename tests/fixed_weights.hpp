// Weights and images that tests/reference/fixed_weights.py computes alike (the formulas are in its
// docstring), so that a backbone's embeddings can be compared with its authors' Python model
// without storing weights: the reference script fills their model, the test fills ours, and both
// embed the same images.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "formats/state_dict.hpp"

namespace flatface::testing {

inline bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Entry k of a state dict, named `name`, of `like`'s shape and dtype.
inline at::Tensor fixed_value(std::int64_t k, const std::string& name, const at::Tensor& like) {
  if (!at::isFloatingType(like.scalar_type())) return at::zeros_like(like);
  const std::int64_t n = like.numel();
  at::Tensor v = at::sin(at::arange(n, at::kDouble) * 0.37 + 1.3 * static_cast<double>(k));
  if (like.dim() >= 2) {
    v = v * std::sqrt(3.0 / static_cast<double>(n / like.size(0)));
  } else if (ends_with(name, "running_var")) {
    v = 1 + 0.25 * v;
  } else if (ends_with(name, "running_mean")) {
    v = 0.1 * v;
  } else if (ends_with(name, "weight")) {
    v = 1 + 0.1 * v;
  } else {
    v = 0.1 * v;
  }
  return v.reshape(like.sizes()).to(like.scalar_type());
}

// Overwrites every entry of `module`'s state in place, in state_dict()'s order (PyTorch's).
inline void fill_fixed(torch::nn::Module& module) {
  at::NoGradGuard no_grad;
  std::int64_t k = 0;
  for (const auto& entry : state_dict(module)) {
    auto t = entry.value();
    t.copy_(fixed_value(k++, entry.key(), t));
  }
}

inline at::Tensor fixed_images(std::int64_t n, std::int64_t side) {
  const auto c = at::arange(3, at::kDouble).view({1, 3, 1, 1});
  const auto h = at::arange(side, at::kDouble).view({1, 1, side, 1});
  const auto w = at::arange(side, at::kDouble).view({1, 1, 1, side});
  const auto b = at::arange(n, at::kDouble).view({n, 1, 1, 1});
  const auto x =
      at::sin(0.11 * (c + 1) * h + 0.07 * (3 - c) * w + 0.5 * b + 0.9 * c) * (0.9 - 0.2 * c);
  return x.to(at::kFloat);
}

}  // namespace flatface::testing
