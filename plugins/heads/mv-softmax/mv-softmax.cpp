// MV-Softmax (Wang et al., "Mis-classified Vector Guided Softmax Loss for Face Recognition",
// AAAI 2020; as in FaceX-Zoo head/MV_Softmax.py, after the authors' xiaoboCASIA/SV-X-Softmax).
//   target   f(m, θ_y) = cos θ_y − m (margin "am"; cos θ_y where cos θ_y ≤ m)
//                      = cos(θ_y + m) (margin "arc"; cos θ_y where cos θ_y ≤ 0)
//   others   h(t, θ_j) = cos θ_j                         if cos θ_j ≤ f(m, θ_y)  (well classified)
//                      = cos θ_j + t                     fixed, mis-classified vector
//                      = (t + 1) cos θ_j + t             adaptive
// all times s. The thresholds on the target (cos θ_y > m, > 0) and the border f (the margin
// without them) are the authors' code. FaceX-Zoo's mv_weight = 1.12 is the adaptive form, t = 0.12.
#include <ATen/ops/where.h>

#include <cmath>

#include "flatface/cosine_head.hpp"
#include "flatface/plugin.hpp"

namespace flatface::heads {
namespace {

class MvSoftmax final : public CosineHead {
 public:
  explicit MvSoftmax(const HeadArgs& args)
      : CosineHead(args, "mv-softmax"),
        arc_(args.options.get_choice("margin", "am", {"am", "arc"}) == "arc"),
        s_(positive_option(args.options, "s", 32.0)),
        m_(nonnegative_option(args.options, "m", arc_ ? 0.5 : 0.35)),
        t_(nonnegative_option(args.options, "t", 0.2)),
        adaptive_(args.options.get_bool("adaptive", false)) {
    if (arc_ && !(m_ < M_PI)) {
      throw ConfigError(args.options.pos_of("m").str() +
                        ": m must be < pi for head 'mv-softmax' with margin = \"arc\" (got " +
                        std::to_string(m_) + ")");
    }
  }

  at::Tensor logits(const at::Tensor& embeddings, const at::Tensor& labels) override {
    at::Tensor cos = cosine(embeddings);
    at::Tensor c = target_column(cos, labels);
    at::Tensor border, target;
    if (arc_) {
      border = cos_plus_margin(c, m_);  // cos(θ_y + m)
      target = at::where(c > 0.0, border, c);
    } else {
      border = c - m_;
      target = at::where(c > m_, border, c);
    }
    at::Tensor mis_classified = cos > border.detach();
    at::Tensor h = adaptive_ ? (t_ + 1.0) * cos + t_ : cos + t_;
    return s_ * with_target(at::where(mis_classified, h, cos), labels, target);
  }

 private:
  bool arc_;
  double s_;
  double m_;
  double t_;
  bool adaptive_;
};

std::shared_ptr<MarginHead> make_mv_softmax(const HeadArgs& args) {
  return std::make_shared<MvSoftmax>(args);
}

}  // namespace
}  // namespace flatface::heads

FLATFACE_PLUGIN(flatface::head_entry(
    "mv-softmax", "mis-classified vector guided softmax, AM or Arc margin, fixed or adaptive t",
    &flatface::heads::make_mv_softmax))
