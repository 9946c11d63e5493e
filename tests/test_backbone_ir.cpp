// The ir plugin against AdaFace's net.py: state-dict names and shapes in order, parameter counts,
// and embeddings with the shared fixed weights, from tests/reference/data/ir.json
// (tests/reference/ir_reference.py); parameter counts and initialisation also from the
// architecture by hand.
#include <ATen/ops/randn.h>
#include <torch/nn/modules/conv.h>
#include <torch/utils.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <stdexcept>
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
using flatface::testing::Json;
using flatface::testing::make_backbone;
using flatface::testing::make_backbone_with;

namespace {

const Json& reference() {
  static const Json json = flatface::testing::load_json(std::string(FLATFACE_TEST_SOURCE_DIR) +
                                                        "/reference/data/ir.json");
  return json;
}

// Our backbone for each of the reference script's models (its MODELS table). IR-50 and IR-SE-50
// are the entries' defaults.
std::shared_ptr<flatface::Backbone> backbone_for(const std::string& model) {
  using flatface::testing::int_options;
  auto with_se = [](flatface::Options options) {
    options.set("se", flatface::Options::Value{true, {}});
    return options;
  };
  if (model == "ir_18") return make_backbone("ir", {{"depth", 18}});
  if (model == "ir_34") return make_backbone("ir", {{"depth", 34}});
  if (model == "ir_50") return make_backbone("ir");
  if (model == "ir_101") return make_backbone("ir", {{"depth", 101}});
  if (model == "ir_18_224") return make_backbone("ir", {{"depth", 18}, {"input", 224}});
  if (model == "ir_se_50") return make_backbone("ir-se");
  if (model == "ir_se_152") return make_backbone_with("ir", with_se(int_options({{"depth", 152}})));
  throw std::runtime_error("no backbone for reference model " + model);
}

std::int64_t count_parameters(const torch::nn::Module& m) {
  std::int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

// Basic-block IR by hand: a BN has a scale and a shift per channel, a PReLU one slope per channel,
// an SE module two bias-free 1x1 convs c -> c/16 -> c; the embedding BN1d has no parameters.
std::int64_t expected_parameters(const std::vector<std::int64_t>& units, bool se, std::int64_t w,
                                 std::int64_t side, std::int64_t embedding) {
  auto bn = [](std::int64_t c) { return 2 * c; };
  std::int64_t n = 3 * w * 9 + bn(w) + w;  // input_layer: conv3x3, BN, PReLU
  std::int64_t in = w;
  for (std::size_t s = 0; s < units.size(); ++s) {
    const std::int64_t out = w << s;
    for (std::int64_t u = 0; u < units[s]; ++u) {
      n += bn(in) + 9 * in * out + bn(out) + out + 9 * out * out + bn(out);
      if (in != out) n += in * out + bn(out);  // conv1x1 + BN shortcut
      if (se) n += 2 * out * (out / 16);
      in = out;
    }
  }
  return n + bn(in) + in * side * side * embedding + embedding;  // output_layer
}

std::vector<std::pair<std::string, std::vector<std::int64_t>>> keys_of(const torch::nn::Module& m) {
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> keys;
  for (const auto& entry : flatface::state_dict(m)) {
    keys.emplace_back(entry.key(), entry.value().sizes().vec());
  }
  return keys;
}

at::Tensor embeddings_of(const Json& rows) {
  std::vector<double> values = flatface::testing::numbers_of(rows);
  const auto n = static_cast<std::int64_t>(rows.size());
  return at::tensor(values, at::kDouble).view({n, -1});
}

at::Tensor fixed_embeddings(flatface::Backbone& net, std::int64_t images) {
  flatface::testing::fill_fixed(net);
  net.eval();
  torch::NoGradGuard no_grad;
  return net.forward(flatface::testing::fixed_images(images, net.input_size())).to(at::kDouble);
}

}  // namespace

CATCH_TEST_CASE(
    "IR's state-dict keys and shapes equal AdaFace's net.py, in order, at every depth") {
  for (const auto& [model, entry] : reference()["models"].items()) {
    CATCH_CAPTURE(model);
    auto net = backbone_for(model);
    std::vector<std::pair<std::string, std::vector<std::int64_t>>> theirs;
    for (const auto& key : entry["keys"]) {
      theirs.emplace_back(key[0].get<std::string>(), key[1].get<std::vector<std::int64_t>>());
    }
    CATCH_CHECK(keys_of(*net) == theirs);
    CATCH_CHECK(count_parameters(*net) == entry["parameters"].get<std::int64_t>());
  }
}

CATCH_TEST_CASE("IR-18 and IR-SE-50 with fixed weights embed fixed images as AdaFace's net.py") {
  for (const auto& [model, entry] : reference()["models"].items()) {
    if (!entry.contains("embeddings")) continue;
    CATCH_CAPTURE(model);
    auto net = backbone_for(model);
    const auto theirs = embeddings_of(entry["embeddings"]);
    const auto ours = fixed_embeddings(*net, theirs.size(0));
    CATCH_REQUIRE(ours.sizes() == theirs.sizes());
    const double scale = theirs.abs().max().item<double>();
    const double diff = (ours - theirs).abs().max().item<double>();
    CATCH_CHECK(diff <= 1e-5 * scale);
    // The images differ little after the fixed weights (their spread is ~5e-4 of the values); it
    // must agree as well: 0 here, 1.9% on Debian 13's libtorch 2.6 (float noise of 1e-5 of the
    // values), hence 5%.
    const auto their_spread = theirs[0] - theirs[1];
    const auto our_spread = ours[0] - ours[1];
    CATCH_CHECK((our_spread - their_spread).abs().max().item<double>() <=
                0.05 * their_spread.abs().max().item<double>());
  }
}

CATCH_TEST_CASE("AdaFace's parameter counts follow the architecture: IR-50 43.6M, IR-101 65.2M") {
  // Together with the first test case (ours equal theirs), our counts equal the hand count too.
  const auto& models = reference()["models"];
  auto theirs = [&](const char* model) { return models[model]["parameters"].get<std::int64_t>(); };
  CATCH_CHECK(theirs("ir_18") == expected_parameters({2, 2, 2, 2}, false, 64, 7, 512));
  CATCH_CHECK(theirs("ir_34") == expected_parameters({3, 4, 6, 3}, false, 64, 7, 512));
  CATCH_CHECK(theirs("ir_50") == expected_parameters({3, 4, 14, 3}, false, 64, 7, 512));
  CATCH_CHECK(theirs("ir_se_50") == expected_parameters({3, 4, 14, 3}, true, 64, 7, 512));
  CATCH_CHECK(theirs("ir_101") == expected_parameters({3, 13, 30, 3}, false, 64, 7, 512));
  CATCH_CHECK(theirs("ir_18_224") == expected_parameters({2, 2, 2, 2}, false, 64, 14, 512));
  CATCH_CHECK(theirs("ir_50") / 1e6 == Approx(43.59).margin(0.005));
  CATCH_CHECK(theirs("ir_101") / 1e6 == Approx(65.15).margin(0.005));
}

CATCH_TEST_CASE("A smaller IR follows the conv arithmetic: width 16 at 56x56 gives a 4x4 map") {
  // Four stride-2 units: 56 -> 28 -> 14 -> 7 -> 4.
  auto net = make_backbone("ir", {{"depth", 18}, {"width", 16}, {"input", 56}, {"embedding", 128}});
  CATCH_CHECK(net->input_size() == 56);
  CATCH_CHECK(net->embedding_dim() == 128);
  CATCH_CHECK(flatface::state_dict(*net).at("output_layer.3.weight").sizes() ==
              at::IntArrayRef({128, 128 * 4 * 4}));
  CATCH_CHECK(count_parameters(*net) == expected_parameters({2, 2, 2, 2}, false, 16, 4, 128));
  CATCH_CHECK(net->forward(at::randn({3, 3, 56, 56})).sizes() == at::IntArrayRef({3, 128}));
}

CATCH_TEST_CASE("Units whose channels stay have no shortcut weights; the others a conv1x1 + BN") {
  const auto dict = flatface::state_dict(*make_backbone("ir", {{"depth", 18}, {"width", 16}}));
  // body.0 halves the resolution with 16 -> 16 channels: a strided identity, as MaxPool2d(1, 2).
  CATCH_CHECK_FALSE(dict.contains("body.0.shortcut_layer.0.weight"));
  CATCH_CHECK_FALSE(dict.contains("body.1.shortcut_layer.0.weight"));
  CATCH_CHECK(dict.at("body.2.shortcut_layer.0.weight").sizes() == at::IntArrayRef({32, 16, 1, 1}));
  // The stride sits on the residual branch's second 3x3 conv.
  const auto net = make_backbone("ir", {{"depth", 18}, {"width", 16}});
  const auto body = net->named_children()["body"];
  const auto res = body->named_children()["2"]->named_children()["res_layer"]->named_children();
  auto stride = [&](const std::string& index) {
    return at::IntArrayRef(res[index]->as<torch::nn::Conv2d>()->options.stride()).vec();
  };
  CATCH_CHECK(stride("1") == std::vector<std::int64_t>{1, 1});
  CATCH_CHECK(stride("4") == std::vector<std::int64_t>{2, 2});
}

CATCH_TEST_CASE("IR starts as AdaFace's initialize_weights: kaiming-normal fan_out, BN 1 and 0") {
  torch::manual_seed(0);
  auto net = make_backbone("ir-se", {{"depth", 18}});
  const auto dict = flatface::state_dict(*net);
  // kaiming_normal_(mode='fan_out', nonlinearity='relu'): std = sqrt(2 / (out · kh · kw)).
  const auto conv = dict.at("body.7.res_layer.4.weight");  // [512, 512, 3, 3]
  CATCH_CHECK(conv.std().item<double>() == Approx(std::sqrt(2.0 / (512 * 9))).epsilon(0.01));
  CATCH_CHECK(conv.mean().item<double>() == Approx(0.0).margin(1e-4));
  // SE's fc1 too: their xavier_uniform_ is overwritten by the pass over all modules.
  const auto fc1 = dict.at("body.7.res_layer.se_block.fc1.weight");  // [32, 512, 1, 1]
  CATCH_CHECK(fc1.std().item<double>() == Approx(std::sqrt(2.0 / 32)).epsilon(0.02));
  const auto fc = dict.at("output_layer.3.weight");  // [512, 25088], fan_out 512
  CATCH_CHECK(fc.std().item<double>() == Approx(std::sqrt(2.0 / 512)).epsilon(0.01));
  CATCH_CHECK(dict.at("output_layer.3.bias").eq(0.0).all().item<bool>());
  CATCH_CHECK(dict.at("body.3.res_layer.2.weight").eq(1.0).all().item<bool>());
  CATCH_CHECK(dict.at("body.3.res_layer.2.bias").eq(0.0).all().item<bool>());
  CATCH_CHECK(dict.at("body.3.res_layer.3.weight").eq(0.25).all().item<bool>());  // PReLU
  CATCH_CHECK_FALSE(dict.contains("output_layer.4.weight"));  // BatchNorm1d(affine=False)
}

CATCH_TEST_CASE("A state dict of another depth or SE setting fails to load, naming the keys") {
  using flatface::ConfigError;
  auto ir18 = make_backbone("ir", {{"depth", 18}, {"width", 16}});
  auto ir34 = make_backbone("ir", {{"depth", 34}, {"width", 16}});
  auto se18 = make_backbone("ir-se", {{"depth", 18}, {"width", 16}});
  const auto dict18 = flatface::state_dict(*ir18);
  CATCH_CHECK_THROWS_AS(flatface::load_state_dict(*ir34, dict18, "ir18.pt"), ConfigError);
  CATCH_CHECK_THROWS_WITH(flatface::load_state_dict(*ir34, dict18, "ir18.pt"),
                          Contains("ir18.pt: weights do not fit the model") &&
                              Contains("missing keys: body.3.shortcut_layer.0.weight") &&
                              Contains("unexpected keys: body.2.shortcut_layer.0.weight") &&
                              Contains("shape mismatch: body.2.res_layer.1.weight"));
  CATCH_CHECK_THROWS_WITH(flatface::load_state_dict(*se18, dict18, "ir18.pt"),
                          Contains("missing keys: body.0.res_layer.se_block.fc1.weight"));
  CATCH_CHECK_THROWS_WITH(flatface::load_state_dict(*ir18, flatface::state_dict(*se18), "se.pt"),
                          Contains("unexpected keys: body.0.res_layer.se_block.fc1.weight"));
  CATCH_CHECK_NOTHROW(flatface::load_state_dict(*ir18, dict18, "ir18.pt"));
}

CATCH_TEST_CASE("Unsupported ir options are ConfigErrors naming the key") {
  using flatface::ConfigError;
  CATCH_CHECK_THROWS_AS(make_backbone("ir", {{"depth", 42}}), ConfigError);
  CATCH_CHECK_THROWS_WITH(make_backbone("ir", {{"depth", 42}}),
                          Contains("depth must be one of 18, 34, 50, 100 (or 101), 152, 200"));
  CATCH_CHECK_THROWS_WITH(make_backbone("ir", {{"deph", 18}}), Contains("deph"));
  CATCH_CHECK_THROWS_WITH(make_backbone("ir", {{"width", 0}}), Contains("width"));
  CATCH_CHECK_THROWS_WITH(make_backbone("ir-se", {{"depth", 18}, {"width", 8}}),
                          Contains("se needs 16 or more channels"));
  CATCH_CHECK_THROWS_WITH(make_backbone("ir", {{"input", 8}}), Contains("input"));
  CATCH_CHECK_THROWS_WITH(make_backbone("ir", {{"embedding", 0}}), Contains("embedding"));
}

CATCH_TEST_CASE("An image of the wrong size is a RuntimeError naming the expected shape") {
  auto net = make_backbone("ir", {{"depth", 18}, {"width", 16}, {"input", 56}});
  CATCH_CHECK_THROWS_AS(net->forward(at::randn({2, 3, 112, 112})), flatface::RuntimeError);
  CATCH_CHECK_THROWS_WITH(net->forward(at::randn({2, 3, 112, 112})), Contains("[N,3,56,56]"));
}

// Not run by default. With FLATFACE_IR_EXPORT=DIR, `test_backbone_ir "[.export]"` writes, for
// each model with reference embeddings, DIR/<model>.pt (our weights after a few training-mode
// batches, so the BN statistics are not the defaults) and DIR/<model>.json (our embeddings of
// the fixed images), for `ir_reference.py SNAPSHOT --check DIR/<model>.pt DIR/<model>.json`.
CATCH_TEST_CASE("Export IR weights and embeddings for AdaFace's net.py", "[.export]") {
  const char* dir = std::getenv("FLATFACE_IR_EXPORT");
  CATCH_REQUIRE(dir != nullptr);
  for (const auto& [model, entry] : reference()["models"].items()) {
    if (!entry.contains("embeddings")) continue;
    torch::manual_seed(1);
    auto net = backbone_for(model);
    const std::int64_t side = net->input_size();
    {
      torch::NoGradGuard no_grad;
      net->train();
      for (int i = 0; i < 3; ++i) net->forward(at::randn({4, 3, side, side}));
      net->eval();
    }
    torch::NoGradGuard no_grad;
    const std::int64_t images = 2;
    const auto x = net->forward(flatface::testing::fixed_images(images, side)).to(at::kDouble);
    const std::string base = std::string(dir) + "/" + model;
    flatface::save_tensor_dict(base + ".pt", flatface::state_dict(*net));
    Json out{{"model", model}, {"images", {images, side}}, {"embeddings", Json::array()}};
    for (std::int64_t i = 0; i < images; ++i) {
      const auto row = x[i].contiguous();
      out["embeddings"].push_back(
          std::vector<double>(row.data_ptr<double>(), row.data_ptr<double>() + row.numel()));
    }
    std::ofstream(base + ".json") << out.dump(1) << "\n";
  }
}
