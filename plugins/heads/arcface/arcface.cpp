// ArcFace (Deng et al. 2019): additive angular margin, target logit s cos(θ_y + m) (paper eq. 3).
#include <ATen/core/grad_mode.h>
#include <ATen/ops/where.h>

#include <cmath>

#include "flatface/cosine_head.hpp"
#include "flatface/plugin.hpp"

namespace flatface::heads {
namespace {

class ArcFace final : public CosineHead {
 public:
  explicit ArcFace(const HeadArgs& args)
      : CosineHead(args, "arcface"),
        s_(positive_option(args.options, "s", 64.0)),
        m_(nonnegative_option(args.options, "m", 0.5)),
        straight_through_(args.options.get_bool("straight_through", false)) {
    if (!(m_ < M_PI)) {
      throw ConfigError(args.options.pos_of("m").str() + ": m must be < pi for head 'arcface'");
    }
  }

  at::Tensor logits(const at::Tensor& embeddings, const at::Tensor& labels) override {
    at::Tensor cos = cosine(embeddings);
    at::Tensor c = target_column(cos, labels);
    at::Tensor target = straight_through_ ? straight_through_target(c) : differentiable_target(c);
    return s_ * with_target(cos, labels, target);  // eq. 3
  }

 private:
  // cos(θ + m) = cos θ cos m − sin θ sin m, differentiable in cos θ; where θ + m > π (cos θ below
  // cos(π − m)) cos(θ + m) would rise again, so the original paper's cos θ − m sin m is used.
  at::Tensor differentiable_target(const at::Tensor& c) const {
    at::Tensor cos_theta_m = cos_plus_margin(c, m_);
    at::Tensor fallback = c - m_ * std::sin(m_);
    return at::where(c > std::cos(M_PI - m_), cos_theta_m, fallback);
  }

  // insightface's current form: θ = arccos(cos θ) and cos(θ + m) without autograd, the gradient
  // passed straight through as d/d cos θ = 1; no fallback region.
  at::Tensor straight_through_target(const at::Tensor& c) const {
    at::Tensor cos_theta_m;
    {
      at::NoGradGuard no_grad;
      cos_theta_m = (c.acos() + m_).cos();
    }
    return cos_theta_m + (c - c.detach());  // value cos(θ + m), gradient 1
  }

  double s_;
  double m_;
  bool straight_through_;
};

std::shared_ptr<MarginHead> make_arcface(const HeadArgs& args) {
  return std::make_shared<ArcFace>(args);
}

}  // namespace
}  // namespace flatface::heads

FLATFACE_PLUGIN(flatface::head_entry("arcface", "additive angular margin, s cos(theta + m)",
                                     &flatface::heads::make_arcface))
