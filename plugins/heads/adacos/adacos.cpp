// AdaCos (Zhang et al., "AdaCos: Adaptively Scaling Cosine Logits for Effectively Learning Deep
// Face Representations", CVPR 2019; as in FaceX-Zoo head/AdaCos.py, after 4uiiurz1/pytorch-adacos).
// Logits s cos θ_j, no margin. Fixed scale: s = √2 log(C − 1). Dynamic scale,
// once per step under no-grad, over the global batch:
//   B_avg = (1/N) Σ_i Σ_{j≠y_i} exp(s cos θ_ij)   (with the s of the previous step)
//   θ_med = median of θ_{i,y_i}                     (the lower median, as torch.median)
//   s ← log(B_avg) / cos(min(π/4, θ_med))
// As in FaceX-Zoo, the step that updates s already uses the new s for its logits.
#include <ATen/core/grad_mode.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/full.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/median.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "flatface/collectives.hpp"
#include "flatface/cosine_head.hpp"
#include "flatface/plugin.hpp"

namespace flatface::heads {
namespace {

std::int64_t bits_of(double v) {
  std::int64_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}
double value_of(std::int64_t b) {
  double v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

// The k-th smallest (from 0) of the non-negative values all ranks hold together, found without
// gathering them (the SDK's collectives sum, they do not gather): the bit patterns of non-negative
// doubles are ordered as the values, so the search narrows [lo, hi] over them, 1024 thresholds a
// round, each round one all-reduce of the counts #{v ≤ threshold} (7 rounds). Exact: the answer
// is one of the values.
double global_kth_smallest(const at::Tensor& values, double k, Collectives& ranks) {
  const at::Tensor v = values.to(at::kDouble).reshape({-1, 1});
  std::int64_t lo = 0, hi = bits_of(4.0);  // angles lie in [0, π]
  while (lo < hi) {
    // n ≥ 2 thresholds that split [lo, hi] into n parts, the last one ending at hi.
    const std::int64_t n = std::min<std::int64_t>(1024, hi - lo + 1);
    const std::int64_t step = (hi - lo + 1) / n;
    std::vector<double> thresholds(n);
    for (std::int64_t i = 0; i < n; ++i)
      thresholds[i] = value_of(i + 1 == n ? hi : lo + step * (i + 1) - 1);
    at::Tensor t = at::tensor(thresholds, v.options());
    at::Tensor counts = (v <= t.view({1, -1})).sum(0).to(at::kDouble);
    ranks.all_reduce_sum({counts});
    counts = counts.cpu();
    const double* c = counts.data_ptr<double>();
    std::int64_t i = 0;
    while (i < n && c[i] < k + 1) ++i;
    if (i == n) return std::nan("");  // a NaN among the values: no order to search
    lo = i == 0 ? lo : bits_of(thresholds[i - 1]) + 1;
    hi = bits_of(thresholds[i]);
  }
  return value_of(hi);
}

class AdaCos final : public CosineHead {
 public:
  explicit AdaCos(const HeadArgs& args)
      : CosineHead(args, "adacos"),
        dynamic_(args.options.get_bool("dynamic", true)),
        ranks_(*args.collectives) {
    if (args.num_classes < 3) {
      throw ConfigError(
          args.options.pos().str() +
          ": head 'adacos' needs at least 3 classes, for its scale sqrt(2) log(C - 1) "
          "(got " +
          std::to_string(args.num_classes) + ")");
    }
    fixed_ = std::sqrt(2.0) * std::log(static_cast<double>(args.num_classes - 1));
    // The dynamic scale, in a buffer so that checkpoints carry it; 0 until the first update, where
    // the fixed scale stands in (kept as a double: a float32 buffer would round it). A scale that
    // the update makes exactly 0 (B_avg = 1) is thus read as the fixed one.
    if (dynamic_) scale_ = register_buffer("scale", at::zeros({1}));
  }

  at::Tensor logits(const at::Tensor& embeddings, const at::Tensor& labels) override {
    at::Tensor cos = cosine(embeddings);
    if (!dynamic_) return fixed_ * cos;
    if (update_statistics()) update_scale(cos.detach(), labels);
    return scale() * cos;
  }

 private:
  at::Tensor scale() const { return at::where(scale_ != 0, scale_, at::full_like(scale_, fixed_)); }

  void update_scale(const at::Tensor& cos, const at::Tensor& labels) {
    at::NoGradGuard no_grad;
    at::Tensor is_target = at::zeros_like(cos, at::kBool).scatter_(1, labels.view({-1, 1}), true);
    at::Tensor others = at::exp(scale() * cos).masked_fill_(is_target, 0.0);
    at::Tensor theta = target_column(cos, labels).clamp(-1.0 + 1e-7, 1.0 - 1e-7).acos();
    // Σ_i Σ_{j≠y} exp(s cos θ_ij) and N over the ranks.
    at::Tensor sums =
        at::stack({others.to(at::kDouble).sum(), at::full({}, static_cast<double>(cos.size(0)),
                                                          cos.options().dtype(at::kDouble))});
    ranks_.all_reduce_sum({sums});
    sums = sums.cpu();
    const double b_avg = sums[0].item<double>() / sums[1].item<double>();
    const double count = sums[1].item<double>();
    const double theta_med = ranks_.world_size() == 1
                                 ? at::median(theta).item<double>()
                                 : global_kth_smallest(theta, std::floor((count - 1) / 2), ranks_);
    scale_.fill_(std::log(b_avg) / std::cos(std::min(M_PI / 4, theta_med)));
  }

  bool dynamic_;
  double fixed_;
  Collectives& ranks_;  // the run's ranks: B_avg and θ_med are the global batch's
  at::Tensor scale_;
};

std::shared_ptr<MarginHead> make_adacos(const HeadArgs& args) {
  return std::make_shared<AdaCos>(args);
}

}  // namespace
}  // namespace flatface::heads

FLATFACE_PLUGIN(flatface::head_entry(
    "adacos", "adaptive scale s cos(theta), no margin (AdaCos, fixed or dynamic)",
    &flatface::heads::make_adacos))
