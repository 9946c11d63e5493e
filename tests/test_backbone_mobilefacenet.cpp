// The mobilefacenet plugin against insightface's arcface_torch MobileFaceNet (`mbf`, `mbf_large`):
// names, shapes and embeddings from tests/reference/data/mobilefacenet.json (written by
// tests/reference/mobilefacenet_reference.py from their code), parameter counts by hand.
#include <ATen/ops/randn.h>
#include <torch/utils.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "backbone_test_support.hpp"
#include "catch_compat.hpp"
#include "fixed_weights.hpp"
#include "formats/state_dict.hpp"
#include "json_file.hpp"

using catch_compat::Approx;
using catch_compat::Contains;
using flatface::testing::make_backbone;

namespace {

const flatface::testing::Json& reference() {
  static const auto json = flatface::testing::load_json(std::string(FLATFACE_TEST_SOURCE_DIR) +
                                                        "/reference/data/mobilefacenet.json");
  return json;
}

// Our entry for each of their models.
const std::vector<std::pair<std::string, std::string>> kModels{
    {"mobilefacenet", "mbf"}, {"mobilefacenet-large", "mbf_large"}};

std::int64_t count_parameters(const torch::nn::Module& m) {
  std::int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

bool is_buffer(const std::string& name) {
  for (const char* leaf : {"running_mean", "running_var", "num_batches_tracked"}) {
    if (flatface::testing::ends_with(name, leaf)) return true;
  }
  return false;
}

// Their parameter count, from the JSON's state-dict shapes (everything but the BN buffers).
std::int64_t parameters_in_reference(const std::string& model) {
  std::int64_t n = 0;
  for (const auto& key : reference()["models"][model]["keys"]) {
    if (is_buffer(key[0].get<std::string>())) continue;
    std::int64_t numel = 1;
    for (const auto& s : key[1]) numel *= s.get<std::int64_t>();
    n += numel;
  }
  return n;
}

// Parameters by hand. A ConvBlock holds its conv, a BN (scale and shift) and a PReLU slope per
// channel: 3 per output channel beyond the conv; a LinearBlock 2. A bottleneck in -> w -> out:
// 1x1 ConvBlock in·w + 3w, depthwise 3x3 ConvBlock 9w + 3w, 1x1 LinearBlock w·out + 2·out.
std::int64_t bottleneck(std::int64_t in, std::int64_t w, std::int64_t out) {
  return in * w + 3 * w + 9 * w + 3 * w + w * out + 2 * out;
}

std::int64_t expected_parameters(const std::vector<std::int64_t>& blocks, std::int64_t scale,
                                 std::int64_t embedding, std::int64_t side) {
  const std::int64_t c = 64 * scale, C = 128 * scale;
  std::int64_t n = 3 * 9 * c + 3 * c;  // stem: 3x3 ConvBlock 3 -> c
  // Stage 1: a 3x3 ConvBlock in 64 groups (c/64 inputs per output) or bottlenecks of width 128.
  n += blocks[0] == 1 ? (c / 64) * 9 * c + 3 * c : blocks[0] * bottleneck(c, 128, c);
  n += bottleneck(c, 128, c) + blocks[1] * bottleneck(c, 128, c);
  n += bottleneck(c, 256, C) + blocks[2] * bottleneck(C, 256, C);
  n += bottleneck(C, 512, C) + blocks[3] * bottleneck(C, 256, C);
  n += C * 512 + 3 * 512;  // conv_sep: 1x1 ConvBlock C -> 512
  // GDC: depthwise side x side LinearBlock, bias-free linear 512 -> D, BN1d.
  return n + 512 * side * side + 2 * 512 + 512 * embedding + 2 * embedding;
}

flatface::Options options_with_blocks(const std::vector<std::int64_t>& blocks,
                                      const std::map<std::string, std::int64_t>& ints = {}) {
  auto options = flatface::testing::int_options(ints);
  std::vector<flatface::Options::Scalar> list(blocks.begin(), blocks.end());
  options.set("blocks", flatface::Options::Value{list, {}});
  return options;
}

}  // namespace

CATCH_TEST_CASE("State-dict names and shapes equal insightface's mbf and mbf_large, in order") {
  for (const auto& [ours, theirs] : kModels) {
    CATCH_CAPTURE(ours);
    auto net = make_backbone(ours);
    const auto dict = flatface::state_dict(*net);
    const auto& keys = reference()["models"][theirs]["keys"];
    CATCH_REQUIRE(dict.size() == keys.size());
    std::size_t i = 0;
    for (const auto& entry : dict) {
      const auto& key = keys[i++];
      CATCH_CHECK(entry.key() == key[0].get<std::string>());
      CATCH_CHECK(entry.value().sizes().vec() == key[1].get<std::vector<std::int64_t>>());
    }
  }
}

CATCH_TEST_CASE("Embeddings equal insightface's on fixed weights and images (float32)") {
  const auto& doc = reference();
  const auto images = flatface::testing::fixed_images(doc["images"].get<std::int64_t>(),
                                                      doc["side"].get<std::int64_t>());
  for (const auto& [ours, theirs] : kModels) {
    CATCH_CAPTURE(ours);
    auto net = make_backbone(ours);
    flatface::testing::fill_fixed(*net);
    net->eval();
    torch::NoGradGuard no_grad;
    const auto out = net->forward(images);
    const auto expected = flatface::testing::numbers_of(doc["models"][theirs]["embeddings"]);
    CATCH_REQUIRE(out.numel() == static_cast<std::int64_t>(expected.size()));
    const auto want = at::tensor(expected, at::kDouble).view(out.sizes());
    const double magnitude = want.abs().max().item<double>();
    const double diff = (out.to(at::kDouble) - want).abs().max().item<double>();
    CATCH_CHECK(magnitude > 1.0);  // the fixed weights give embeddings of order 1-10, not ~0
    // 0 on Debian 12 (the libtorch the reference ran on). Debian 13's libtorch 2.6 on two threads
    // differs from run to run by up to 3.3e-5 of the magnitude for mbf_large (one thread: within
    // 1e-5), while insightface's model on that torch reproduces these numbers; hence 1e-4.
    CATCH_CHECK(diff <= 1e-4 * magnitude);
  }
}

CATCH_TEST_CASE("Parameter counts: mbf 2,059,520 and mbf_large 6,314,880, as the architecture") {
  // Their counts, summed from the shapes in data/mobilefacenet.json (the reference script's own
  // sum of model.parameters() is stored beside them).
  CATCH_CHECK(parameters_in_reference("mbf") == 2059520);
  CATCH_CHECK(parameters_in_reference("mbf_large") == 6314880);
  CATCH_CHECK(reference()["models"]["mbf"]["parameters"].get<std::int64_t>() == 2059520);
  CATCH_CHECK(expected_parameters({1, 4, 6, 2}, 2, 512, 7) == 2059520);
  CATCH_CHECK(expected_parameters({2, 8, 12, 4}, 4, 512, 7) == 6314880);
  CATCH_CHECK(count_parameters(*make_backbone("mobilefacenet")) == 2059520);
  CATCH_CHECK(count_parameters(*make_backbone("mobilefacenet-large")) == 6314880);
}

CATCH_TEST_CASE(
    "The stem's second layer is a 64-group conv when blocks[0] is 1, else bottlenecks") {
  // mbf (scale 2): 128 channels in 64 groups of 2, not depthwise.
  auto mbf = flatface::state_dict(*make_backbone("mobilefacenet"));
  CATCH_CHECK(mbf.at("layers.1.layers.0.weight").sizes() == at::IntArrayRef({128, 2, 3, 3}));
  // mbf_large (scale 4): two bottlenecks 256 -> 128 -> 256; the 64·scale stages keep width 128.
  auto large = flatface::state_dict(*make_backbone("mobilefacenet-large"));
  CATCH_CHECK(large.at("layers.1.layers.1.layers.0.layers.0.weight").sizes() ==
              at::IntArrayRef({128, 256, 1, 1}));
  CATCH_CHECK(large.at("layers.3.layers.7.layers.1.layers.0.weight").sizes() ==
              at::IntArrayRef({128, 1, 3, 3}));
  CATCH_CHECK(large.find("layers.1.layers.2.layers.0.layers.0.weight") == large.end());
}

CATCH_TEST_CASE("The GDC kernel is the last feature map's side, ceil(input / 16)") {
  // Stem and stages 2-4 each halve with a stride-2 3x3 conv, padding 1: s -> ceil(s / 2).
  // 112 -> 56 -> 28 -> 14 -> 7; 56 -> 28 -> 14 -> 7 -> 4; 64 -> 4; 100 -> 50 -> 25 -> 13 -> 7;
  // 17 -> 9 -> 5 -> 3 -> 2.
  for (auto [input, side] : {std::pair{112, 7}, std::pair{56, 4}, std::pair{64, 4},
                             std::pair{100, 7}, std::pair{17, 2}}) {
    CATCH_CAPTURE(input);
    auto net = make_backbone("mobilefacenet", {{"input", input}, {"scale", 1}, {"embedding", 16}});
    CATCH_CHECK(flatface::state_dict(*net).at("features.layers.0.layers.0.weight").sizes() ==
                at::IntArrayRef({512, 1, side, side}));
    net->eval();
    CATCH_CHECK(net->forward(at::randn({2, 3, input, input})).sizes() == at::IntArrayRef({2, 16}));
  }
}

CATCH_TEST_CASE("mobilefacenet-small is a scale-1 mbf on 56x56 faces with 128-d embeddings") {
  auto net = make_backbone("mobilefacenet-small");
  CATCH_CHECK(net->input_size() == 56);
  CATCH_CHECK(net->embedding_dim() == 128);
  CATCH_CHECK(count_parameters(*net) == expected_parameters({1, 4, 6, 2}, 1, 128, 4));
  CATCH_CHECK(count_parameters(*net) == 986240);
  CATCH_CHECK(net->forward(at::randn({2, 3, 56, 56})).sizes() == at::IntArrayRef({2, 128}));
}

CATCH_TEST_CASE("Convs and the linear layer start from He normal over fan_out, BN at 1 and 0") {
  torch::manual_seed(0);
  auto dict = flatface::state_dict(*make_backbone("mobilefacenet"));
  // fan_out = 512 · 1 · 1 for conv_sep's [512, 256, 1, 1] and the linear [512, 512]: std
  // sqrt(2 / 512) = 0.0625, over 131072 and 262144 draws (std error < 0.5%).
  for (const char* name : {"conv_sep.layers.0.weight", "features.layers.2.weight"}) {
    CATCH_CAPTURE(name);
    CATCH_CHECK(dict.at(name).mean().item<double>() == Approx(0.0).margin(1e-3));
    CATCH_CHECK(dict.at(name).std().item<double>() == Approx(0.0625).epsilon(0.01));
  }
  CATCH_CHECK(dict.at("conv_sep.layers.1.weight").eq(1.0).all().item<bool>());
  CATCH_CHECK(dict.at("conv_sep.layers.1.bias").eq(0.0).all().item<bool>());
  CATCH_CHECK(dict.at("conv_sep.layers.2.weight").eq(0.25).all().item<bool>());  // PReLU default
}

CATCH_TEST_CASE("A state dict of other blocks or another scale fails to load, naming the keys") {
  auto mbf = make_backbone("mobilefacenet");
  const auto dict = flatface::state_dict(*mbf);
  // One more bottleneck in the last stage: its keys are missing from mbf's dict.
  auto deeper =
      flatface::testing::make_backbone_with("mobilefacenet", options_with_blocks({1, 4, 6, 3}));
  CATCH_CHECK_THROWS_AS(flatface::load_state_dict(*deeper, dict, "mbf.pth"), flatface::ConfigError);
  CATCH_CHECK_THROWS_WITH(flatface::load_state_dict(*deeper, dict, "mbf.pth"),
                          Contains("missing keys: layers.7.layers.2.layers.0.layers.0.weight"));
  // blocks[0] = 2 turns the stem's grouped conv into bottlenecks: different keys both ways.
  auto residual_stem =
      flatface::testing::make_backbone_with("mobilefacenet", options_with_blocks({2, 4, 6, 2}));
  CATCH_CHECK_THROWS_WITH(flatface::load_state_dict(*residual_stem, dict, "mbf.pth"),
                          Contains("unexpected keys: layers.1.layers.0.weight"));
  // Scale 4 (mbf_large's width) with mbf's blocks: same keys, other shapes.
  auto wider = make_backbone("mobilefacenet", {{"scale", 4}});
  CATCH_CHECK_THROWS_WITH(
      flatface::load_state_dict(*wider, dict, "mbf.pth"),
      Contains(
          "shape mismatch: layers.0.layers.0.weight (file [128, 3, 3, 3], model [256, 3, 3, 3])"));
  // A 112x112 model's GDC kernel does not fit a 56x56 one.
  auto small_input = make_backbone("mobilefacenet", {{"input", 56}});
  CATCH_CHECK_THROWS_WITH(flatface::load_state_dict(*small_input, dict, "mbf.pth"),
                          Contains("features.layers.0.layers.0.weight (file [512, 1, 7, 7], "
                                   "model [512, 1, 4, 4])"));
  CATCH_CHECK_NOTHROW(flatface::load_state_dict(*make_backbone("mobilefacenet"), dict, "mbf.pth"));
}

CATCH_TEST_CASE("Bad mobilefacenet options are ConfigErrors naming the key") {
  using flatface::ConfigError;
  using flatface::testing::make_backbone_with;
  CATCH_CHECK_THROWS_AS(make_backbone_with("mobilefacenet", options_with_blocks({1, 4, 6})),
                        ConfigError);
  CATCH_CHECK_THROWS_WITH(make_backbone_with("mobilefacenet", options_with_blocks({1, 4, 6})),
                          Contains("blocks must be 4 integers >= 1 (got [1, 4, 6])"));
  CATCH_CHECK_THROWS_WITH(make_backbone_with("mobilefacenet", options_with_blocks({1, 0, 6, 2})),
                          Contains("blocks must be 4 integers >= 1"));
  CATCH_CHECK_THROWS_WITH(make_backbone("mobilefacenet", {{"scale", 0}}),
                          Contains("scale must be at least 1"));
  CATCH_CHECK_THROWS_WITH(make_backbone("mobilefacenet-large", {{"embedding", 0}}),
                          Contains("embedding"));
  CATCH_CHECK_THROWS_WITH(make_backbone("mobilefacenet-small", {{"input", 0}}), Contains("input"));
  CATCH_CHECK_THROWS_WITH(make_backbone("mobilefacenet", {{"scal", 2}}), Contains("scal"));
  // A single integer where a list is expected names the key too.
  CATCH_CHECK_THROWS_WITH(make_backbone("mobilefacenet", {{"blocks", 4}}), Contains("blocks"));
}

CATCH_TEST_CASE("An image of the wrong size is a RuntimeError naming the expected shape") {
  auto net = make_backbone("mobilefacenet-small");
  CATCH_CHECK_THROWS_AS(net->forward(at::randn({2, 3, 112, 112})), flatface::RuntimeError);
  CATCH_CHECK_THROWS_WITH(net->forward(at::randn({2, 3, 112, 112})), Contains("[N,3,56,56]"));
  CATCH_CHECK_THROWS_WITH(net->forward(at::randn({2, 1, 56, 56})), Contains("[N,3,56,56]"));
}

// Not run by default. `FLATFACE_EXPORT_DIR=DIR test_backbone_mobilefacenet "[.export]"` writes, per
// model, our fixed-weight state dict (DIR/<theirs>.pt) and our embeddings of the fixed images
// (DIR/<theirs>.json), for `mobilefacenet_reference.py SNAPSHOT --check <theirs> ...`.
CATCH_TEST_CASE("Export fixed-weight state dicts and embeddings for insightface's model",
                "[.export]") {
  const char* dir = std::getenv("FLATFACE_EXPORT_DIR");
  CATCH_REQUIRE(dir != nullptr);
  const auto images = flatface::testing::fixed_images(3, 112);
  for (const auto& [ours, theirs] : kModels) {
    auto net = make_backbone(ours);
    flatface::testing::fill_fixed(*net);
    net->eval();
    torch::NoGradGuard no_grad;
    const auto out = net->forward(images).to(at::kDouble).contiguous();
    flatface::save_tensor_dict(std::string(dir) + "/" + theirs + ".pt", flatface::state_dict(*net));
    flatface::testing::Json rows = flatface::testing::Json::array();
    for (std::int64_t i = 0; i < out.size(0); ++i) {
      const double* row = out[i].data_ptr<double>();
      rows.push_back(std::vector<double>(row, row + out.size(1)));
    }
    std::ofstream(std::string(dir) + "/" + theirs + ".json")
        << flatface::testing::Json{{"embeddings", rows}}.dump();
  }
}
