// Combined margin (insightface: arcface_mxnet/train.py and arcface_torch/losses.py
// CombinedMarginLoss): target logit s (cos(m1 θ_y + m2) − m3), other logits s cos θ_j.
// (1, m, 0) is ArcFace, (1, 0, m) CosFace, insightface's "combined" (1, 0.3, 0.2) both.
// Where m1 θ_y + m2 > π the cosine would rise again; there, as arcface_torch's CombinedMarginLoss
// before it turned straight-through (Dec 2022), the target is cos θ_y − m2 sin m2 − m3.
// straight_through = true is today's arcface_torch: cos(m1 θ_y + m2) computed without autograd
// (no fallback) and the gradient passed through as d/d cos θ_y = 1.
#include <ATen/core/grad_mode.h>
#include <ATen/ops/where.h>

#include <cmath>

#include "flatface/cosine_head.hpp"
#include "flatface/plugin.hpp"

namespace flatface::heads {
namespace {

class CombinedMargin final : public CosineHead {
 public:
  explicit CombinedMargin(const HeadArgs& args)
      : CosineHead(args, "combined-margin"),
        s_(positive_option(args.options, "s", 64.0)),
        m1_(positive_option(args.options, "m1", 1.0)),
        m2_(nonnegative_option(args.options, "m2", 0.3)),
        m3_(nonnegative_option(args.options, "m3", 0.2)),
        straight_through_(args.options.get_bool("straight_through", false)) {
    if (!(m2_ < M_PI)) {
      throw ConfigError(args.options.pos_of("m2").str() +
                        ": m2 must be < pi for head 'combined-margin' (got " + std::to_string(m2_) +
                        ")");
    }
  }

  at::Tensor logits(const at::Tensor& embeddings, const at::Tensor& labels) override {
    at::Tensor cos = cosine(embeddings);
    at::Tensor c = target_column(cos, labels);
    at::Tensor target;
    if (m1_ == 1.0 && m2_ == 0.0) {
      target = c;  // CosFace: no angle needed, the gradient stays exact at |cos θ| = 1
    } else if (straight_through_) {
      at::Tensor angular;
      {
        at::NoGradGuard no_grad;
        angular = (m1_ * c.acos() + m2_).cos();
      }
      target = angular + (c - c.detach());  // value cos(m1 θ + m2), gradient 1
    } else {
      // arccos has an infinite slope at ±1, so θ_y is taken just inside.
      at::Tensor theta = c.clamp(-1.0 + 1e-7, 1.0 - 1e-7).acos();
      at::Tensor angle = m1_ * theta + m2_;
      target = at::where(angle <= M_PI, angle.cos(), c - m2_ * std::sin(m2_));
    }
    return s_ * with_target(cos, labels, target - m3_);
  }

 private:
  double s_, m1_, m2_, m3_;
  bool straight_through_;
};

std::shared_ptr<MarginHead> make_combined_margin(const HeadArgs& args) {
  return std::make_shared<CombinedMargin>(args);
}

}  // namespace
}  // namespace flatface::heads

FLATFACE_PLUGIN(flatface::head_entry("combined-margin",
                                     "combined margin s (cos(m1 theta + m2) - m3) (insightface)",
                                     &flatface::heads::make_combined_margin))
