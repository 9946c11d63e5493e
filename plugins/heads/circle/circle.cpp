// Circle loss, classification form (Sun et al., "Circle Loss: A Unified Perspective of Pair
// Similarity Optimization", CVPR 2020, with class proxies; as in FaceX-Zoo
// head/CircleLoss.py). With s = cos θ:
//   target   γ α_p (s_p − Δ_p),  α_p = [1 + m − s_p]_+,  Δ_p = 1 − m
//   others   γ α_n (s_n − Δ_n),  α_n = [s_n + m]_+,      Δ_n = m
// The weights α are detached, as in the authors' code: they scale the gradient, they are not
// trained.
#include "flatface/cosine_head.hpp"
#include "flatface/plugin.hpp"

namespace flatface::heads {
namespace {

class Circle final : public CosineHead {
 public:
  explicit Circle(const HeadArgs& args)
      : CosineHead(args, "circle"),
        m_(nonnegative_option(args.options, "m", 0.25)),
        gamma_(positive_option(args.options, "gamma", 256.0)) {}

  at::Tensor logits(const at::Tensor& embeddings, const at::Tensor& labels) override {
    at::Tensor cos = cosine(embeddings);
    at::Tensor a = cos.detach();
    at::Tensor positive = (1.0 + m_ - a).clamp_min(0.0) * (cos - (1.0 - m_));  // α_p (s_p − Δ_p)
    at::Tensor negative = (a + m_).clamp_min(0.0) * (cos - m_);  // α_n (s_n − Δ_n)
    return gamma_ * with_target(negative, labels, target_column(positive, labels));
  }

 private:
  double m_;
  double gamma_;
};

std::shared_ptr<MarginHead> make_circle(const HeadArgs& args) {
  return std::make_shared<Circle>(args);
}

}  // namespace
}  // namespace flatface::heads

FLATFACE_PLUGIN(flatface::head_entry("circle",
                                     "circle loss with class proxies, gamma alpha (cos - delta)",
                                     &flatface::heads::make_circle))
