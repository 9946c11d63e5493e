// ArcFace's margin the other way round, built out of tree on the installed cosine-head base
// (flatface/cosine_head.hpp): θ_y = arccos(cos θ_y), target logit s cos(min(θ_y + m, π)), other
// logits s cos θ_j. Where θ_y + m ≤ π it is the in-tree `arcface` (cos θ cos m − sin θ sin m),
// computed through the angle; beyond, the target stays at −s rather than rising again.
#include <cmath>
#include <flatface/cosine_head.hpp>
#include <flatface/plugin.hpp>

namespace {

using flatface::heads::target_column;
using flatface::heads::with_target;

class AngularMargin final : public flatface::heads::CosineHead {
 public:
  explicit AngularMargin(const flatface::HeadArgs& args)
      : CosineHead(args, "angular-margin"),
        s_(flatface::positive_option(args.options, "s", 64.0)),
        m_(flatface::nonnegative_option(args.options, "m", 0.5)) {}

  at::Tensor logits(const at::Tensor& embeddings, const at::Tensor& labels) override {
    at::Tensor cos = cosine(embeddings);  // clamped to [-1, 1] by the base
    // arccos has an infinite slope at ±1, so θ_y is taken just inside.
    at::Tensor theta = target_column(cos, labels).clamp(-1 + 1e-7, 1 - 1e-7).acos();
    at::Tensor target = (theta + m_).clamp_max(M_PI).cos();  // cos(min(θ_y + m, π))
    return s_ * with_target(cos, labels, target);
  }

 private:
  double s_, m_;
};

std::shared_ptr<flatface::MarginHead> make(const flatface::HeadArgs& args) {
  return std::make_shared<AngularMargin>(args);
}

}  // namespace

FLATFACE_PLUGIN(flatface::head_entry(
    "angular-margin", "ArcFace's s cos(min(theta + m, pi)) through arccos, out of tree", &make))
