// Three entries over one architecture: `mobilefacenet` is insightface's `mbf` (blocks 1,4,6,2,
// scale 2, 112x112, 512-d), `mobilefacenet-large` their `mbf_large` (blocks 2,8,12,4, scale 4), and
// `mobilefacenet-small` a scale-1 `mbf` on 56x56 faces with 128-d embeddings for CPU runs (the
// GDC kernel follows the input: 4x4 at 56). All take the same options and use the same names.
#include "flatface/plugin.hpp"

#include "mobilefacenet.hpp"

namespace {

using flatface::mobilefacenet::Config;

std::shared_ptr<flatface::Backbone> make(const flatface::BackboneArgs& args, Config c) {
  const auto& o = args.options;
  c.blocks = o.get_ints("blocks", c.blocks);
  c.scale = o.get_int("scale", c.scale);
  c.embedding = o.get_int("embedding", c.embedding);
  c.input = o.get_int("input", c.input);
  return std::make_shared<flatface::mobilefacenet::MobileFaceNet>(c);
}

std::shared_ptr<flatface::Backbone> make_mbf(const flatface::BackboneArgs& args) {
  return make(args, Config{});
}

std::shared_ptr<flatface::Backbone> make_mbf_large(const flatface::BackboneArgs& args) {
  Config large;
  large.blocks = {2, 8, 12, 4};
  large.scale = 4;
  return make(args, large);
}

std::shared_ptr<flatface::Backbone> make_mbf_small(const flatface::BackboneArgs& args) {
  Config small;
  small.scale = 1;
  small.input = 56;
  small.embedding = 128;
  return make(args, small);
}

}  // namespace

FLATFACE_PLUGIN(
    flatface::backbone_entry("mobilefacenet",
                             "insightface MobileFaceNet `mbf` (blocks 1,4,6,2, scale 2, 112x112, "
                             "512-d)",
                             &make_mbf),
    flatface::backbone_entry("mobilefacenet-large",
                             "insightface MobileFaceNet `mbf_large` (blocks 2,8,12,4, scale 4, "
                             "112x112, 512-d)",
                             &make_mbf_large),
    flatface::backbone_entry("mobilefacenet-small",
                             "MobileFaceNet for CPUs (blocks 1,4,6,2, scale 1, 56x56, 128-d)",
                             &make_mbf_small))
