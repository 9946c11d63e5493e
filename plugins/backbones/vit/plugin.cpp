// Two entries over one architecture: `vit`, insightface's vit_t (112x112, patch 9, 512-d) with
// `size` choosing vit_t, vit_s, vit_b or vit_l, and `vit-cpu`, a four-block ViT on 56x56 faces
// (patch 7: 64 patches, width 128, 128-d) that trains on two CPU cores. Both take the same options
// and use the same parameter names; explicit options override the size's values.
#include "flatface/plugin.hpp"

#include "vit.hpp"

namespace {

using flatface::vit::Config;

std::shared_ptr<flatface::Backbone> make(const flatface::BackboneArgs& args, Config c) {
  const auto& o = args.options;
  const std::string size = o.get_string("size", "");
  if (!size.empty()) c = flatface::vit::preset(size);
  c.dim = o.get_int("dim", c.dim);
  c.depth = o.get_int("depth", c.depth);
  c.heads = o.get_int("heads", c.heads);
  c.mlp_ratio = o.get_double("mlp_ratio", c.mlp_ratio);
  c.patch = o.get_int("patch", c.patch);
  c.input = o.get_int("input", c.input);
  c.embedding = o.get_int("embedding", c.embedding);
  c.drop_path = o.get_double("drop_path", c.drop_path);
  c.norm = o.get_choice("norm", c.norm, {"ln", "bn"});
  // A batch norm over patches cannot see a masked sequence, so "bn" masks nothing by default.
  c.mask_ratio = o.get_double("mask_ratio", c.norm == "bn" ? 0.0 : c.mask_ratio);
  return std::make_shared<flatface::vit::VisionTransformer>(c);
}

std::shared_ptr<flatface::Backbone> make_vit(const flatface::BackboneArgs& args) {
  return make(args, flatface::vit::preset("t"));
}

std::shared_ptr<flatface::Backbone> make_vit_cpu(const flatface::BackboneArgs& args) {
  Config cpu;
  cpu.input = 56;
  cpu.patch = 7;  // 8x8 = 64 patches
  cpu.dim = 128;
  cpu.depth = 4;
  cpu.heads = 4;
  cpu.embedding = 128;
  return make(args, cpu);
}

}  // namespace

FLATFACE_PLUGIN(
    flatface::backbone_entry("vit",
                             "insightface ViT-T/S/B/L (size t|s|b|l, default t: 112x112, patch 9, "
                             "512-d)",
                             &make_vit),
    flatface::backbone_entry("vit-cpu",
                             "four-block ViT for CPUs (56x56, patch 7, width 128, 128-d)",
                             &make_vit_cpu))
