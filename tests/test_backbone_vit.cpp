// The vit plugin against insightface's own VisionTransformer (arcface_torch backbones/vit.py):
// tests/reference/vit_reference.py fills their model with the fixed weights of
// tests/reference/fixed_weights.py, embeds fixed images and writes tests/reference/data/vit.json;
// here the same weights go into ours. Parameter counts are derived by hand from the architecture.
#include <ATen/Parallel.h>
#include <ATen/ops/randn.h>
#include <torch/utils.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "backbone_test_support.hpp"
#include "catch_compat.hpp"
#include "fixed_weights.hpp"
#include "formats/state_dict.hpp"
#include "json_file.hpp"

using catch_compat::Approx;
using flatface::testing::Json;
using flatface::testing::make_backbone;
using flatface::testing::make_backbone_with;

namespace {

const Json& reference() {
  static const Json json = flatface::testing::load_json(std::string(FLATFACE_TEST_SOURCE_DIR) +
                                                        "/reference/data/vit.json");
  return json;
}

const Json& reference_config(const std::string& name) {
  for (const auto& config : reference()["configs"]) {
    if (config["name"] == name) return config;
  }
  throw std::runtime_error("vit.json has no configuration " + name);
}

flatface::Options options_with(const std::map<std::string, std::int64_t>& ints,
                               const std::map<std::string, flatface::Options::Value>& others) {
  auto options = flatface::testing::int_options(ints);
  for (const auto& [key, value] : others) options.set(key, value);
  return options;
}

flatface::Options::Value text(const std::string& s) {
  return {s, {}};
}
flatface::Options::Value number(double x) {
  return {x, {}};
}

// Our model for each configuration of vit.json, built through the registry.
std::shared_ptr<flatface::Backbone> ours(const std::string& name) {
  if (name == "vit_t") return make_backbone("vit");
  if (name == "vit-cpu") return make_backbone("vit-cpu");
  if (name == "vit-cpu-bn")
    return make_backbone_with("vit-cpu", options_with({}, {{"norm", text("bn")}}));
  const std::string size = name.substr(name.size() - 1);  // vit_s -> s
  return make_backbone_with("vit", options_with({}, {{"size", text(size)}}));
}

std::int64_t count_parameters(const torch::nn::Module& m) {
  std::int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

// By hand: P patches of width d, MLP width h = 4d, embedding E, a LayerNorm has 2d parameters.
std::int64_t expected_parameters(std::int64_t d, std::int64_t depth, std::int64_t patch,
                                 std::int64_t patches, std::int64_t embedding) {
  const std::int64_t h = 4 * d;
  const std::int64_t block = 2 * 2 * d     // norm1, norm2
                             + d * 3 * d   // qkv, no bias
                             + d * d + d   // proj
                             + d * h + h   // fc1
                             + h * d + d;  // fc2
  return patches * d + d                   // pos_embed, mask_token
         + 3 * patch * patch * d + d       // patch conv
         + depth * block + 2 * d           // blocks, norm
         + patches * d * d + 2 * d         // feature.0 (no bias), feature.1
         + d * embedding + 2 * embedding;  // feature.2 (no bias), feature.3
}

at::Tensor embed(flatface::Backbone& net, std::int64_t images) {
  net.eval();
  torch::NoGradGuard no_grad;
  return net.forward(flatface::testing::fixed_images(images, net.input_size()));
}

at::Tensor train_forward(flatface::Backbone& net, std::uint64_t seed) {
  net.train();
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  return net.forward(flatface::testing::fixed_images(4, net.input_size()));
}

}  // namespace

CATCH_TEST_CASE("vit's state-dict names and shapes equal insightface's, in their order") {
  // mask_token is assigned after the feature head but is the model's own parameter, so PyTorch
  // lists it second, after pos_embed; in each block both norms come before the attention.
  for (const char* name : {"vit_t", "vit_s", "vit-cpu", "vit-cpu-bn"}) {
    CATCH_CAPTURE(name);
    const auto& keys = reference_config(name)["keys"];
    auto net = ours(name);
    const auto dict = flatface::state_dict(*net);
    CATCH_REQUIRE(dict.size() == keys.size());
    std::size_t i = 0;
    for (const auto& entry : dict) {
      CATCH_CHECK(entry.key() == keys[i][0].get<std::string>());
      CATCH_CHECK(entry.value().sizes().vec() == keys[i][1].get<std::vector<std::int64_t>>());
      ++i;
    }
  }
}

CATCH_TEST_CASE(
    "vit_t/s/b/l and vit-cpu have the parameter counts of the architecture and of theirs") {
  // 112 / 9 = 12 patches a side (the last 4 pixels are never seen): 144 patches.
  const struct {
    const char* size;
    std::int64_t d, depth;
  } sizes[] = {{"t", 256, 12}, {"s", 512, 12}, {"b", 512, 24}, {"l", 768, 24}};
  for (const auto& c : sizes) {
    CATCH_CAPTURE(c.size);
    const auto& theirs = reference_config(std::string("vit_") + c.size)["parameters"];
    CATCH_CHECK(theirs.get<std::int64_t>() == expected_parameters(c.d, c.depth, 9, 144, 512));
    // Building vit_b and vit_l takes seconds; one block on 27x27 (9 patches) shows the width.
    auto small = make_backbone_with(
        "vit", options_with({{"depth", 1}, {"input", 27}}, {{"size", text(c.size)}}));
    CATCH_CHECK(count_parameters(*small) == expected_parameters(c.d, 1, 9, 9, 512));
  }
  CATCH_CHECK(count_parameters(*make_backbone("vit")) == expected_parameters(256, 12, 9, 144, 512));
  CATCH_CHECK(count_parameters(*make_backbone("vit-cpu")) ==
              reference_config("vit-cpu")["parameters"].get<std::int64_t>());
  CATCH_CHECK(expected_parameters(128, 4, 7, 64, 128) == 1884544);
  // The figures to quote: 19.1M (vit_t), 76.0M (vit_s), 113.8M (vit_b), 255.7M (vit_l).
  CATCH_CHECK(expected_parameters(256, 12, 9, 144, 512) / 1e6 == Approx(19.14).margin(0.005));
  CATCH_CHECK(expected_parameters(768, 24, 9, 144, 512) / 1e6 == Approx(255.68).margin(0.005));
}

CATCH_TEST_CASE("With the same weights, vit embeds images as insightface's model does") {
  for (const char* name : {"vit_t", "vit-cpu", "vit-cpu-bn"}) {
    CATCH_CAPTURE(name);
    const auto& config = reference_config(name);
    auto net = ours(name);
    flatface::testing::fill_fixed(*net);
    const auto out = embed(*net, config["images"].get<std::int64_t>());
    const auto numbers = flatface::testing::numbers_of(config["embeddings"]);
    const auto theirs = at::tensor(numbers, at::kDouble).view(out.sizes());
    const double scale = theirs.abs().max().item<double>();
    const double diff = (out.to(at::kDouble) - theirs).abs().max().item<double>();
    CATCH_CHECK(scale > 0.1);
    CATCH_CHECK(diff <= 1e-5 * scale);
  }
}

CATCH_TEST_CASE("In eval mode, mask_ratio and drop_path change nothing") {
  auto plain = make_backbone_with(
      "vit-cpu", options_with({}, {{"mask_ratio", number(0.0)}, {"drop_path", number(0.0)}}));
  auto regularised = make_backbone_with(
      "vit-cpu", options_with({}, {{"mask_ratio", number(0.5)}, {"drop_path", number(0.5)}}));
  flatface::testing::fill_fixed(*plain);
  flatface::testing::fill_fixed(*regularised);
  CATCH_CHECK(embed(*plain, 3).equal(embed(*regularised, 3)));
}

CATCH_TEST_CASE(
    "In training, masking and stochastic depth change the output, reproducibly by seed") {
  auto make = [](double mask_ratio, double drop_path) {
    auto net = make_backbone_with("vit-cpu", options_with({}, {{"mask_ratio", number(mask_ratio)},
                                                               {"drop_path", number(drop_path)}}));
    flatface::testing::fill_fixed(*net);
    return net;
  };
  auto plain = make(0.0, 0.0);
  auto masked = make(0.25, 0.0);
  auto dropped = make(0.0, 0.5);
  auto both = make(0.25, 0.5);
  // Without either, training differs from eval only by the batch statistics: no randomness.
  CATCH_CHECK(train_forward(*plain, 1).equal(train_forward(*plain, 2)));
  const auto reference = train_forward(*plain, 1);
  for (auto* net : {&masked, &dropped, &both}) {
    const auto first = train_forward(**net, 1);
    CATCH_CHECK_FALSE(first.allclose(reference, 1e-4, 1e-4));
    CATCH_CHECK(first.equal(train_forward(**net, 1)));           // same seed, same output
    CATCH_CHECK_FALSE(first.allclose(train_forward(**net, 2)));  // another seed, another mask
  }
}

CATCH_TEST_CASE("A state dict of another vit is refused with the keys that do not fit") {
  auto net = make_backbone("vit-cpu");
  auto wider = make_backbone_with("vit-cpu", options_with({{"dim", 64}}, {}));
  auto deeper = make_backbone_with("vit-cpu", options_with({{"depth", 5}}, {}));
  auto bn = make_backbone_with("vit-cpu", options_with({}, {{"norm", text("bn")}}));
  using flatface::ConfigError;
  using flatface::load_state_dict;
  using flatface::state_dict;
  CATCH_CHECK_THROWS_AS(load_state_dict(*net, state_dict(*wider), "w.pt"), ConfigError);
  CATCH_CHECK_THROWS_WITH(
      load_state_dict(*net, state_dict(*wider), "w.pt"),
      catch_compat::Contains("w.pt") && catch_compat::Contains("shape mismatch: pos_embed"));
  CATCH_CHECK_THROWS_WITH(load_state_dict(*net, state_dict(*deeper), "d.pt"),
                          catch_compat::Contains("unexpected keys: blocks.4.norm1.weight"));
  CATCH_CHECK_THROWS_WITH(load_state_dict(*net, state_dict(*bn), "bn.pt"),
                          catch_compat::Contains("missing keys: blocks.0.norm1.weight") &&
                              catch_compat::Contains("blocks.0.norm1.bn.running_mean"));
  CATCH_CHECK_NOTHROW(load_state_dict(*net, state_dict(*make_backbone("vit-cpu")), "same.pt"));
}

CATCH_TEST_CASE("Linear weights start from N(0, 0.02) with zero biases, norms from 1 and 0") {
  torch::manual_seed(0);
  auto net = make_backbone("vit-cpu");
  const auto dict = flatface::state_dict(*net);
  for (const char* key : {"blocks.3.mlp.fc1.weight", "feature.0.weight", "pos_embed"}) {
    CATCH_CAPTURE(key);
    const auto w = dict.at(key);  // at least 8192 draws: the std's error is under 1%
    CATCH_CHECK(w.mean().item<double>() == Approx(0.0).margin(2e-3));
    CATCH_CHECK(w.std().item<double>() == Approx(0.02).epsilon(0.03));
  }
  CATCH_CHECK(dict.at("mask_token").std().item<double>() == Approx(0.02).epsilon(0.3));
  CATCH_CHECK(dict.at("blocks.0.mlp.fc1.bias").eq(0.0).all().item<bool>());
  CATCH_CHECK(dict.at("blocks.0.attn.proj.bias").eq(0.0).all().item<bool>());
  CATCH_CHECK(dict.at("blocks.0.norm1.weight").eq(1.0).all().item<bool>());
  CATCH_CHECK(dict.at("norm.bias").eq(0.0).all().item<bool>());
  CATCH_CHECK(dict.at("feature.3.weight").eq(1.0).all().item<bool>());
  // The patch conv keeps PyTorch's default: uniform within 1/sqrt(fan_in), fan_in = 3 * 7 * 7.
  CATCH_CHECK(dict.at("patch_embed.proj.weight").abs().max().item<double>() <=
              1 / std::sqrt(147.0));
}

CATCH_TEST_CASE("size picks insightface's configuration and explicit options override it") {
  auto s = make_backbone_with("vit", options_with({{"depth", 2}}, {{"size", text("s")}}));
  const auto dict = flatface::state_dict(*s);
  CATCH_CHECK(dict.at("pos_embed").sizes() == at::IntArrayRef({1, 144, 512}));
  CATCH_CHECK(dict.find("blocks.1.norm1.weight") != dict.end());
  CATCH_CHECK(dict.find("blocks.2.norm1.weight") == dict.end());
  auto small = make_backbone(
      "vit",
      {{"input", 56}, {"patch", 8}, {"dim", 32}, {"depth", 1}, {"heads", 2}, {"embedding", 16}});
  CATCH_CHECK(small->input_size() == 56);
  CATCH_CHECK(small->embedding_dim() == 16);
  CATCH_CHECK(small->forward(at::randn({2, 3, 56, 56})).sizes() == at::IntArrayRef({2, 16}));
}

CATCH_TEST_CASE("Unsupported vit options are ConfigErrors naming the key") {
  using catch_compat::Contains;
  using flatface::ConfigError;
  auto with = [](const std::map<std::string, flatface::Options::Value>& values) {
    return make_backbone_with("vit-cpu", options_with({}, values));
  };
  CATCH_CHECK_THROWS_AS(with({{"size", text("xl")}}), ConfigError);
  CATCH_CHECK_THROWS_WITH(with({{"size", text("xl")}}), Contains("size must be one of t, s, b, l"));
  CATCH_CHECK_THROWS_WITH(make_backbone("vit-cpu", {{"heads", 3}}),
                          Contains("heads must divide dim"));
  CATCH_CHECK_THROWS_WITH(make_backbone("vit-cpu", {{"dimm", 64}}), Contains("dimm"));
  CATCH_CHECK_THROWS_WITH(make_backbone("vit-cpu", {{"patch", 57}}), Contains("input"));
  CATCH_CHECK_THROWS_WITH(with({{"drop_path", number(1.0)}}),
                          Contains("drop_path must be in [0, 1)"));
  CATCH_CHECK_THROWS_WITH(with({{"mask_ratio", number(-0.1)}}), Contains("mask_ratio"));
  CATCH_CHECK_THROWS_WITH(with({{"norm", text("gn")}}), Contains("'norm'"));
  CATCH_CHECK_THROWS_WITH(with({{"norm", text("bn")}, {"mask_ratio", number(0.1)}}),
                          Contains("mask_ratio must be 0 with norm = \"bn\""));
}

CATCH_TEST_CASE("An image of the wrong size is a RuntimeError naming vit's input shape") {
  auto net = make_backbone("vit-cpu");
  CATCH_CHECK_THROWS_AS(net->forward(at::randn({2, 3, 112, 112})), flatface::RuntimeError);
  CATCH_CHECK_THROWS_WITH(net->forward(at::randn({2, 3, 112, 112})),
                          catch_compat::Contains("[N,3,56,56]"));
}

// Not run by default. With FLATFACE_VIT_EXPORT=DIR, `test_backbone_vit "[.export]"` writes our
// fixed-weight vit_t and vit-cpu-bn (DIR/<name>.pt) and their embeddings (DIR/<name>.json) for
// `vit_reference.py SNAPSHOT --check DIR/<name>.pt DIR/<name>.json`.
CATCH_TEST_CASE("Export fixed-weight vit models for insightface's code to load", "[.export]") {
  const char* dir = std::getenv("FLATFACE_VIT_EXPORT");
  CATCH_REQUIRE(dir != nullptr);
  for (const char* name : {"vit_t", "vit-cpu-bn"}) {
    auto net = ours(name);
    flatface::testing::fill_fixed(*net);
    const std::int64_t images = 3;
    const auto out = embed(*net, images).to(at::kDouble).contiguous();
    const std::string base = std::string(dir) + "/" + name;
    flatface::save_tensor_dict(base + ".pt", flatface::state_dict(*net));
    Json rows = Json::array();
    for (std::int64_t i = 0; i < out.size(0); ++i) {
      const auto row = out[i];
      rows.push_back(
          std::vector<double>(row.data_ptr<double>(), row.data_ptr<double>() + row.numel()));
    }
    std::ofstream(base + ".json") << Json{
        {"config", name},
        {"images", images},
        {"side", net->input_size()},
        {"embeddings", rows}}.dump();
  }
}
