// Two entries over AdaFace's IR family: `ir` (IR-50 by default, 112x112, 512-d, dropout 0.4, as
// net.build_model('ir_50')) and `ir-se`, the same with SE modules (net.build_model('ir_se_50')).
// Both take the same options. Colour order is not the backbone's business: AdaFace's published
// models expect BGR, which the host's input options provide.
#include "flatface/plugin.hpp"

#include "ir.hpp"

namespace {

using flatface::ir::Config;

std::shared_ptr<flatface::Backbone> make(const flatface::BackboneArgs& args, Config c) {
  const auto& o = args.options;
  c.depth = o.get_int("depth", c.depth);
  c.se = o.get_bool("se", c.se);
  c.input = o.get_int("input", c.input);
  c.embedding = o.get_int("embedding", c.embedding);
  c.dropout = o.get_double("dropout", c.dropout);
  c.width = o.get_int("width", c.width);
  return std::make_shared<flatface::ir::IR>(c);
}

std::shared_ptr<flatface::Backbone> make_ir(const flatface::BackboneArgs& args) {
  return make(args, Config{});
}

std::shared_ptr<flatface::Backbone> make_ir_se(const flatface::BackboneArgs& args) {
  Config se;
  se.se = true;
  return make(args, se);
}

}  // namespace

FLATFACE_PLUGIN(
    flatface::backbone_entry("ir",
                             "AdaFace IR-18/34/50/100(101)/152/200 (default 50, 112x112, 512-d)",
                             &make_ir),
    flatface::backbone_entry("ir-se",
                             "AdaFace IR-SE: IR with squeeze-and-excitation (default IR-SE-50)",
                             &make_ir_se))
