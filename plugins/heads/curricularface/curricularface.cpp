// CurricularFace (Huang et al., "CurricularFace: Adaptive Curriculum Learning Loss for Deep Face
// Recognition", CVPR 2020; the authors' head: github.com/HuangYG123/CurricularFace head/metrics.py)
//   target      T(cos θ_y) = cos(θ_y + m)            (cos θ_y − m sin m where θ_y + m > π)
//   non-target  N(t, cos θ_j) = cos θ_j              if cos θ_j ≤ cos(θ_y + m)   (easy)
//                             = cos θ_j (t + cos θ_j) otherwise                  (hard)
//   curriculum  t ← α mean_i cos θ_{y_i} + (1 − α) t,  t = 0 at the start
// all times s. As in the authors' code, t is updated before the hard negatives are modulated (the
// step that updates t uses the new t), and the easy/hard border is cos(θ_y + m) itself, also
// where the target takes the fallback.
#include <ATen/core/grad_mode.h>
#include <ATen/ops/full.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>

#include <cmath>

#include "flatface/collectives.hpp"
#include "flatface/cosine_head.hpp"
#include "flatface/plugin.hpp"

namespace flatface::heads {
namespace {

class CurricularFace final : public CosineHead {
 public:
  explicit CurricularFace(const HeadArgs& args)
      : CosineHead(args, "curricularface"),
        s_(positive_option(args.options, "s", 64.0)),
        m_(nonnegative_option(args.options, "m", 0.5)),
        t_alpha_(nonnegative_option(args.options, "t_alpha", 0.01)),
        ranks_(*args.collectives) {
    if (!(m_ < M_PI)) {
      throw ConfigError(args.options.pos_of("m").str() +
                        ": m must be < pi for head 'curricularface' (got " + std::to_string(m_) +
                        ")");
    }
    if (t_alpha_ > 1) {
      throw ConfigError(args.options.pos_of("t_alpha").str() +
                        ": t_alpha must be in [0, 1] for head 'curricularface' (got " +
                        std::to_string(t_alpha_) + ")");
    }
    t_ = register_buffer("t", at::zeros({1}));  // a buffer, so that checkpoints carry it
  }

  at::Tensor logits(const at::Tensor& embeddings, const at::Tensor& labels) override {
    at::Tensor cos = cosine(embeddings);
    at::Tensor c = target_column(cos, labels);
    at::Tensor cos_theta_m = cos_plus_margin(c, m_);  // cos(θ_y + m)
    at::Tensor target = at::where(c > std::cos(M_PI - m_), cos_theta_m, c - m_ * std::sin(m_));
    if (update_statistics()) update_t(c);
    at::Tensor hard = cos > cos_theta_m.detach();
    at::Tensor modulated = at::where(hard, cos * (t_ + cos), cos);  // t is a constant here
    return s_ * with_target(modulated, labels, target);
  }

 private:
  // t ← α mean(cos θ_y) + (1 − α) t, the mean over the global batch (Σ and count over the ranks).
  void update_t(const at::Tensor& c) {
    at::NoGradGuard no_grad;
    at::Tensor sums =
        at::stack({c.to(at::kDouble).sum(),
                   at::full({}, static_cast<double>(c.size(0)), c.options().dtype(at::kDouble))});
    ranks_.all_reduce_sum({sums});
    t_.mul_(1.0 - t_alpha_).add_(t_alpha_ * (sums[0] / sums[1]).to(t_.scalar_type()));
  }

  double s_;
  double m_;
  double t_alpha_;
  Collectives& ranks_;  // the run's ranks: t follows the global batch
  at::Tensor t_;
};

std::shared_ptr<MarginHead> make_curricularface(const HeadArgs& args) {
  return std::make_shared<CurricularFace>(args);
}

}  // namespace
}  // namespace flatface::heads

FLATFACE_PLUGIN(flatface::head_entry(
    "curricularface", "adaptive curriculum: ArcFace target, hard negatives cos (t + cos)",
    &flatface::heads::make_curricularface))
