// CosFace (Wang et al. 2018): additive cosine margin, target logit s (cos θ_y − m).
#include "flatface/cosine_head.hpp"
#include "flatface/plugin.hpp"

namespace flatface::heads {
namespace {

class CosFace final : public CosineHead {
 public:
  explicit CosFace(const HeadArgs& args)
      : CosineHead(args, "cosface"),
        s_(positive_option(args.options, "s", 64.0)),
        m_(nonnegative_option(args.options, "m", 0.35)) {}

  at::Tensor logits(const at::Tensor& embeddings, const at::Tensor& labels) override {
    at::Tensor cos = cosine(embeddings);
    at::Tensor target = target_column(cos, labels) - m_;  // cos θ_y − m
    return s_ * with_target(cos, labels, target);
  }

 private:
  double s_;
  double m_;
};

std::shared_ptr<MarginHead> make_cosface(const HeadArgs& args) {
  return std::make_shared<CosFace>(args);
}

}  // namespace
}  // namespace flatface::heads

FLATFACE_PLUGIN(flatface::head_entry("cosface", "additive cosine margin, s (cos(theta) - m)",
                                     &flatface::heads::make_cosface))
