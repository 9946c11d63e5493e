// insightface's combined margin, built out of tree on the installed cosine-head base
// (flatface/cosine_head.hpp): target logit s (cos(m1 θ_y + m2) − m3), other logits s cos θ_j.
// (m1, m2, m3) = (1, m, 0) is ArcFace's margin, (1, 0, m) CosFace's.
#include <flatface/cosine_head.hpp>
#include <flatface/plugin.hpp>

namespace {

using flatface::heads::target_column;
using flatface::heads::with_target;

class CombinedMargin final : public flatface::heads::CosineHead {
 public:
  explicit CombinedMargin(const flatface::HeadArgs& args)
      : CosineHead(args, "combined-margin"),
        s_(flatface::positive_option(args.options, "s", 64.0)),
        m1_(flatface::positive_option(args.options, "m1", 1.0)),
        m2_(flatface::nonnegative_option(args.options, "m2", 0.3)),
        m3_(flatface::nonnegative_option(args.options, "m3", 0.2)) {}

  at::Tensor logits(const at::Tensor& embeddings, const at::Tensor& labels) override {
    at::Tensor cos = cosine(embeddings);  // clamped to [-1, 1] by the base
    // arccos has an infinite slope at ±1, so θ_y is taken just inside.
    at::Tensor theta = target_column(cos, labels).clamp(-1 + 1e-7, 1 - 1e-7).acos();
    at::Tensor target = (m1_ * theta + m2_).cos() - m3_;  // cos(m1 θ_y + m2) − m3
    return s_ * with_target(cos, labels, target);
  }

 private:
  double s_, m1_, m2_, m3_;
};

std::shared_ptr<flatface::MarginHead> make(const flatface::HeadArgs& args) {
  return std::make_shared<CombinedMargin>(args);
}

}  // namespace

FLATFACE_PLUGIN(flatface::head_entry("combined-margin",
                                     "combined margin s (cos(m1 theta + m2) - m3), out of tree",
                                     &make))
