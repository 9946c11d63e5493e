// The helper base of the cosine-based margin heads (ArcFace, AdaFace, CosFace, softmax, and yours):
// it owns the class-weight matrix W [C,D] and gives the cosines cos θ_ij = <x_i/‖x_i‖, W_j/‖W_j‖>
// (paper eq. 2); the helpers read and write the target column, so that a head writes only its
// margin. Header-only.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <cmath>
#include <string>

#include "flatface/head.hpp"
#include "flatface/option_checks.hpp"

namespace flatface::heads {

// Rows scaled to unit L2 norm.
inline at::Tensor l2_normalize(const at::Tensor& x) {
  return x / x.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);
}

// cos θ_{i,y_i} as [N,1].
inline at::Tensor target_column(const at::Tensor& cos, const at::Tensor& labels) {
  return cos.gather(1, labels.view({-1, 1}));
}

// `cos` with column y_i of row i replaced by target[i] ([N,1]); out of place, so autograd sees it.
inline at::Tensor with_target(const at::Tensor& cos, const at::Tensor& labels,
                              const at::Tensor& target) {
  return cos.scatter(1, labels.view({-1, 1}), target);
}

// cos(θ + m) from c = cos θ, as c cos m − sin θ sin m with sin θ = √(1 − c²) floored at 1e-6 so
// that the gradient stays finite at |c| = 1; m a number, or a tensor broadcast against c (a margin
// per row). No fallback where θ + m > π: heads choose theirs.
inline at::Tensor cos_plus_margin(const at::Tensor& c, double m) {
  return c * std::cos(m) - (1.0 - c * c).clamp_min(1e-12).sqrt() * std::sin(m);
}
inline at::Tensor cos_plus_margin(const at::Tensor& c, const at::Tensor& m) {
  return c * m.cos() - (1.0 - c * c).clamp_min(1e-12).sqrt() * m.sin();
}

// Derive from it and implement logits(); `name` is the head's plugin name, for error messages.
class CosineHead : public MarginHead {
 public:
  explicit CosineHead(const HeadArgs& args, const std::string& name) {
    if (args.num_classes <= 0 || args.embedding_dim <= 0) {
      throw ConfigError(args.options.pos().str() + ": head '" + name +
                        "' needs num_classes > 0 and embedding_dim > 0 (got " +
                        std::to_string(args.num_classes) + " and " +
                        std::to_string(args.embedding_dim) + ")");
    }
    // N(0, 0.01) as in insightface's class centres.
    weight_ = register_parameter(
        "weight", at::empty({args.num_classes, args.embedding_dim}).normal_(0.0, 0.01));
  }

  // Plain cosines, clamped to [-1, 1] against rounding.
  at::Tensor cosine(const at::Tensor& embeddings) override {
    return l2_normalize(embeddings).mm(l2_normalize(weight_).t()).clamp(-1.0, 1.0);
  }

 protected:
  at::Tensor weight_;
};

}  // namespace flatface::heads
