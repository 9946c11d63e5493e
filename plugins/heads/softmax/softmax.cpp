// Normalised softmax: logits s cos θ_j for every class, no margin (paper eq. 2).
#include "flatface/cosine_head.hpp"
#include "flatface/plugin.hpp"

namespace flatface::heads {
namespace {

class NormalizedSoftmax final : public CosineHead {
 public:
  explicit NormalizedSoftmax(const HeadArgs& args)
      : CosineHead(args, "softmax"), s_(positive_option(args.options, "s", 64.0)) {}

  at::Tensor logits(const at::Tensor& embeddings, const at::Tensor& /*labels*/) override {
    return s_ * cosine(embeddings);  // eq. 2
  }

 private:
  double s_;
};

std::shared_ptr<MarginHead> make_softmax(const HeadArgs& args) {
  return std::make_shared<NormalizedSoftmax>(args);
}

}  // namespace
}  // namespace flatface::heads

FLATFACE_PLUGIN(flatface::head_entry("softmax", "normalised softmax, s cos(theta)",
                                     &flatface::heads::make_softmax))
