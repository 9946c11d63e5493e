// MagFace (Meng et al., "MagFace: A Universal Representation for Face Recognition and Quality
// Assessment", CVPR 2021, Sec. 3; github.com/IrvingMeng/MagFace models/magface.py, run/run.sh):
//   a = clamp(‖x‖, l_a, u_a),  m(a) = (u_m − l_m)/(u_a − l_a) (a − l_a) + l_m,
//   target logit s cos(θ_y + m(a)),  L = CE + λ_g mean_i g(a_i),  g(a) = a/u_a² + 1/a.
// m(a) and g(a) are differentiable in a, which is what ties the magnitude to quality; outside
// [l_a, u_a] the clamp stops that gradient, as in the authors' code. The magnitude ‖x‖ is the
// quality score (`flatface embed` writes it).
#include <ATen/ops/where.h>

#include <cmath>
#include <string>

#include "flatface/cosine_head.hpp"
#include "flatface/plugin.hpp"

namespace flatface::heads {
namespace {

class MagFace final : public CosineHead {
 public:
  explicit MagFace(const HeadArgs& args)
      : CosineHead(args, "magface"),
        s_(positive_option(args.options, "s", 64.0)),
        l_a_(positive_option(args.options, "l_a", 10.0)),
        u_a_(positive_option(args.options, "u_a", 110.0)),
        l_m_(nonnegative_option(args.options, "l_m", 0.45)),
        u_m_(nonnegative_option(args.options, "u_m", 0.8)),
        lambda_g_(nonnegative_option(args.options, "lambda_g", 35.0)),
        easy_margin_(args.options.get_bool("easy_margin", true)) {
    if (!(l_a_ < u_a_))
      throw ConfigError(args.options.pos_of("u_a").str() +
                        ": head 'magface' needs l_a < u_a (got " + std::to_string(l_a_) + " and " +
                        std::to_string(u_a_) + ")");
    if (!(l_m_ <= u_m_ && u_m_ < M_PI))
      throw ConfigError(args.options.pos_of("u_m").str() +
                        ": head 'magface' needs l_m <= u_m < pi (got " + std::to_string(l_m_) +
                        " and " + std::to_string(u_m_) + ")");
  }

  at::Tensor logits(const at::Tensor& embeddings, const at::Tensor& labels) override {
    at::Tensor m = (u_m_ - l_m_) / (u_a_ - l_a_) * (magnitude(embeddings) - l_a_) + l_m_;  // [N,1]
    at::Tensor cos = cosine(embeddings);
    at::Tensor c = target_column(cos, labels);
    at::Tensor cos_theta_m = cos_plus_margin(c, m);  // cos(θ + m(a))
    // The authors' two forms: easy margin (their default) keeps cos θ where cos θ <= 0; otherwise
    // ArcFace's cos θ − m sin m where θ + m > π, where cos(θ + m) would rise again.
    at::Tensor target = easy_margin_
                            ? at::where(c > 0, cos_theta_m, c)
                            : at::where(c > (M_PI - m).cos(), cos_theta_m, c - m * m.sin());
    return s_ * with_target(cos, labels, target);
  }

  // λ_g g(a_i) per sample: the loss is CE + λ_g mean_i g(a_i).
  at::Tensor regularizer(const at::Tensor& embeddings, const at::Tensor&) override {
    at::Tensor a = magnitude(embeddings).squeeze(1);
    return lambda_g_ * (a / (u_a_ * u_a_) + 1.0 / a);
  }

 private:
  at::Tensor magnitude(const at::Tensor& x) const {
    return x.norm(2, {1}, /*keepdim=*/true).clamp(l_a_, u_a_);
  }

  double s_, l_a_, u_a_, l_m_, u_m_, lambda_g_;
  bool easy_margin_;
};

std::shared_ptr<MarginHead> make_magface(const HeadArgs& args) {
  return std::make_shared<MagFace>(args);
}

}  // namespace
}  // namespace flatface::heads

FLATFACE_PLUGIN(flatface::head_entry(
    "magface", "magnitude-aware margin s cos(theta + m(a)) and regulariser lambda_g g(a) (MagFace)",
    &flatface::heads::make_magface))
