// insightface's combined margin, built out of tree against the installed flatface package:
// target logit s (cos(m1 θ_y + m2) − m3), other logits s cos θ_j. m1 = 1, m2 = 0.3, m3 = 0.2.
#include <ATen/ops/randn.h>

#include <flatface/plugin.hpp>

namespace {

class CombinedMargin final : public flatface::MarginHead {
 public:
  explicit CombinedMargin(const flatface::HeadArgs& args)
      : s_(args.options.get_double("s", 64.0)),
        m1_(args.options.get_double("m1", 1.0)),
        m2_(args.options.get_double("m2", 0.3)),
        m3_(args.options.get_double("m3", 0.2)) {
    weight_ =
        register_parameter("weight", at::randn({args.num_classes, args.embedding_dim}) * 0.01);
  }

  at::Tensor cosine(const at::Tensor& x) override {
    auto xn = x / x.norm(2, {1}, true).clamp_min(1e-12);
    auto wn = weight_ / weight_.norm(2, {1}, true).clamp_min(1e-12);
    return xn.matmul(wn.t());
  }

  at::Tensor logits(const at::Tensor& x, const at::Tensor& labels) override {
    auto cos = cosine(x).clamp(-1 + 1e-7, 1 - 1e-7);
    auto y = labels.unsqueeze(1);
    auto theta_y = cos.gather(1, y).acos();
    auto target = (theta_y * m1_ + m2_).cos() - m3_;  // cos(m1 θ_y + m2) − m3
    return cos.scatter(1, y, target) * s_;
  }

 private:
  double s_, m1_, m2_, m3_;
  at::Tensor weight_;
};

std::shared_ptr<flatface::MarginHead> make(const flatface::HeadArgs& args) {
  return std::make_shared<CombinedMargin>(args);
}

}  // namespace

FLATFACE_PLUGIN(flatface::head_entry("combined-margin",
                                     "combined margin s (cos(m1 theta + m2) - m3), out of tree",
                                     &make))
