// The iresnet plugin: shapes, parameter counts and names that must equal insightface's
// arcface_torch IResNet, derived here from the architecture in DESIGN.md ("Backbones").
#include <ATen/Parallel.h>
#include <ATen/ops/randn.h>
#include <torch/utils.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "backbone_test_support.hpp"
#include "catch_compat.hpp"
#include "experiment/experiment.hpp"
#include "formats/state_dict.hpp"

using catch_compat::Approx;
using flatface::testing::make_backbone;

namespace {

const std::vector<std::int64_t> kStages18{2, 2, 2, 2};
const std::vector<std::int64_t> kStages50{3, 4, 14, 3};
const std::vector<std::int64_t> kStages100{3, 13, 30, 3};

std::int64_t count_parameters(const torch::nn::Module& m) {
  std::int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

// Parameters by hand: a BN has a scale and a shift per channel, a PReLU one slope per channel.
std::int64_t expected_parameters(const std::vector<std::int64_t>& stages, std::int64_t w,
                                 std::int64_t embedding, std::int64_t side) {
  auto bn = [](std::int64_t c) { return 2 * c; };
  std::int64_t n = 3 * w * 9 + bn(w) + w;  // stem conv3x3, BN, PReLU
  std::int64_t in = w;
  for (std::size_t s = 0; s < stages.size(); ++s) {
    const std::int64_t out = w << s;
    for (std::int64_t b = 0; b < stages[s]; ++b) {
      n += bn(in) + 9 * in * out + bn(out) + out + 9 * out * out + bn(out);
      if (b == 0) n += in * out + bn(out);  // conv1x1 + BN shortcut
      in = out;
    }
  }
  return n + bn(in) + in * side * side * embedding + embedding + bn(embedding);
}

std::vector<std::string> expected_names(const std::vector<std::int64_t>& stages) {
  std::vector<std::string> names;
  auto bn = [&](const std::string& p) {
    for (const char* leaf :
         {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}) {
      names.push_back(p + "." + leaf);
    }
  };
  names.push_back("conv1.weight");
  bn("bn1");
  names.push_back("prelu.weight");
  for (std::size_t s = 0; s < stages.size(); ++s) {
    for (std::int64_t b = 0; b < stages[s]; ++b) {
      const std::string p = "layer" + std::to_string(s + 1) + "." + std::to_string(b) + ".";
      bn(p + "bn1");
      names.push_back(p + "conv1.weight");
      bn(p + "bn2");
      names.push_back(p + "prelu.weight");
      names.push_back(p + "conv2.weight");
      bn(p + "bn3");
      if (b == 0) {
        names.push_back(p + "downsample.0.weight");
        bn(p + "downsample.1");
      }
    }
  }
  bn("bn2");
  names.push_back("fc.weight");
  names.push_back("fc.bias");
  bn("features");
  return names;
}

}  // namespace

CATCH_TEST_CASE("iresnet maps [N,3,s,s] images to [N,D] embeddings for s = 112, 64 and 56") {
  for (std::int64_t depth : {18, 50}) {
    for (std::int64_t input : {112, 64, 56}) {
      CATCH_CAPTURE(depth, input);
      auto net = make_backbone(
          "iresnet", {{"depth", depth}, {"width", 8}, {"input", input}, {"embedding", 32}});
      CATCH_CHECK(net->embedding_dim() == 32);
      CATCH_CHECK(net->input_size() == input);
      const auto out = net->forward(at::randn({2, 3, input, input}));
      CATCH_CHECK(out.sizes() == at::IntArrayRef({2, 32}));
    }
  }
}

CATCH_TEST_CASE("The FC's input follows the conv arithmetic: 112 -> 7x7, 64 -> 4x4, 56 -> 4x4") {
  // Four stride-2 3x3 convs with padding 1: s -> floor((s - 1) / 2) + 1.
  // 112 -> 56 -> 28 -> 14 -> 7; 64 -> 32 -> 16 -> 8 -> 4; 56 -> 28 -> 14 -> 7 -> 4.
  for (auto [input, side] : {std::pair{112, 7}, std::pair{64, 4}, std::pair{56, 4}}) {
    auto net = make_backbone("iresnet", {{"depth", 18}, {"width", 8}, {"input", input}});
    const auto dict = flatface::state_dict(*net);
    CATCH_CHECK(dict.at("fc.weight").sizes() == at::IntArrayRef({512, 64 * side * side}));
  }
  // A stride-2 stem adds one halving: 112 -> 56 -> 28 -> 14 -> 7 -> 4.
  auto net = make_backbone("iresnet", {{"depth", 18}, {"width", 8}, {"stem_stride", 2}});
  CATCH_CHECK(flatface::state_dict(*net).at("fc.weight").sizes() ==
              at::IntArrayRef({512, 64 * 4 * 4}));
}

CATCH_TEST_CASE("IResNet-50 and -100 at width 64 have the parameter count of the architecture") {
  auto r50 = make_backbone("iresnet", {{"depth", 50}});
  auto r100 = make_backbone("iresnet", {{"depth", 100}});
  const auto n50 = count_parameters(*r50);
  const auto n100 = count_parameters(*r100);
  CATCH_CHECK(n50 == expected_parameters(kStages50, 64, 512, 7));
  CATCH_CHECK(n100 == expected_parameters(kStages100, 64, 512, 7));
  // The figures usually quoted for insightface's r50 and r100: 43.6M and 65.2M.
  CATCH_CHECK(n50 / 1e6 == Approx(43.6).margin(0.05));
  CATCH_CHECK(n100 / 1e6 == Approx(65.2).margin(0.05));
}

CATCH_TEST_CASE("iresnet-small is a width-16 IResNet-18 on 56x56 faces with a stride-2 stem") {
  auto net = make_backbone("iresnet-small");
  CATCH_CHECK(net->input_size() == 56);
  CATCH_CHECK(net->embedding_dim() == 128);
  // The stem's stride changes no shape but the FC's: 56 -> 28 -> 14 -> 7 -> 4 -> 2.
  CATCH_CHECK(count_parameters(*net) == expected_parameters(kStages18, 16, 128, 2));
  CATCH_CHECK(net->forward(at::randn({2, 3, 56, 56})).sizes() == at::IntArrayRef({2, 128}));
}

CATCH_TEST_CASE("IResNet-18's parameter and buffer names follow insightface's naming, in order") {
  auto net = make_backbone("iresnet", {{"depth", 18}, {"width", 4}, {"input", 56}});
  std::vector<std::string> names;
  for (const auto& entry : flatface::state_dict(*net)) names.push_back(entry.key());
  CATCH_CHECK(names == expected_names(kStages18));
}

CATCH_TEST_CASE("The embedding BN's scale is fixed at 1 and is not trained") {
  auto net = make_backbone("iresnet-small");
  std::int64_t frozen = 0;
  for (const auto& p : net->named_parameters()) {
    if (p.key() == "features.weight") {
      CATCH_CHECK_FALSE(p.value().requires_grad());
      CATCH_CHECK(p.value().eq(1.0).all().item<bool>());
      ++frozen;
    } else {
      CATCH_CHECK(p.value().requires_grad());
    }
  }
  CATCH_CHECK(frozen == 1);
}

CATCH_TEST_CASE("Convolutions start from N(0, 0.1) and BN layers from scale 1, shift 0") {
  torch::manual_seed(0);
  auto net = make_backbone("iresnet", {{"depth", 18}, {"width", 64}});
  const auto dict = flatface::state_dict(*net);
  const auto w = dict.at("layer4.1.conv2.weight");  // 512*512*9 draws: std error ~1e-4
  CATCH_CHECK(w.mean().item<double>() == Approx(0.0).margin(1e-3));
  CATCH_CHECK(w.std().item<double>() == Approx(0.1).epsilon(0.01));
  CATCH_CHECK(dict.at("layer4.1.bn2.weight").eq(1.0).all().item<bool>());
  CATCH_CHECK(dict.at("layer4.1.bn2.bias").eq(0.0).all().item<bool>());
  CATCH_CHECK(dict.at("layer2.0.downsample.1.weight").eq(1.0).all().item<bool>());
}

CATCH_TEST_CASE("zero_init_residual zeroes each block's bn2 scale, as insightface's option does") {
  auto options = flatface::testing::int_options({{"width", 4}, {"depth", 18}});
  options.set("zero_init_residual", flatface::Options::Value{true, {}});
  auto net = flatface::testing::make_backbone_with("iresnet", options);
  const auto dict = flatface::state_dict(*net);
  CATCH_CHECK(dict.at("layer1.1.bn2.weight").eq(0.0).all().item<bool>());
  CATCH_CHECK(dict.at("layer1.1.bn3.weight").eq(1.0).all().item<bool>());
}

CATCH_TEST_CASE("Unsupported iresnet options are ConfigErrors naming the key") {
  using flatface::ConfigError;
  CATCH_CHECK_THROWS_AS(make_backbone("iresnet", {{"depth", 42}}), ConfigError);
  CATCH_CHECK_THROWS_WITH(make_backbone("iresnet", {{"depth", 42}}),
                          catch_compat::Contains("depth must be one of 18, 34, 50, 100, 200"));
  CATCH_CHECK_THROWS_WITH(make_backbone("iresnet-small", {{"deph", 18}}),
                          catch_compat::Contains("deph"));
  CATCH_CHECK_THROWS_WITH(make_backbone("iresnet-small", {{"width", 0}}),
                          catch_compat::Contains("width"));
  CATCH_CHECK_THROWS_WITH(make_backbone("iresnet", {{"stem_stride", 4}}),
                          catch_compat::Contains("stem_stride must be 1 or 2"));
}

CATCH_TEST_CASE("An image of the wrong size is a RuntimeError naming the expected shape") {
  auto net = make_backbone("iresnet-small");
  CATCH_CHECK_THROWS_AS(net->forward(at::randn({2, 3, 112, 112})), flatface::RuntimeError);
  CATCH_CHECK_THROWS_WITH(net->forward(at::randn({2, 3, 112, 112})),
                          catch_compat::Contains("[N,3,56,56]"));
}

// Not run by default: `test_backbones "[.benchmark]"` prints training throughput on two threads.
CATCH_TEST_CASE("iresnet-small training throughput on two threads", "[.benchmark]") {
  at::set_num_threads(2);
  auto net = make_backbone("iresnet-small");
  net->train();
  const auto images = at::randn({64, 3, 56, 56});
  auto step = [&] {
    net->zero_grad();
    net->forward(images).square().mean().backward();
  };
  step();  // warm-up
  const int steps = 10;
  const auto start = std::chrono::steady_clock::now();
  const std::clock_t cpu_start = std::clock();
  for (int i = 0; i < steps; ++i) step();
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  const double cpu_seconds = double(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  // On a shared machine the wall clock lies; CPU time over two threads is the unloaded estimate.
  std::printf(
      "iresnet-small forward+backward, batch 64, 56x56, 2 threads: %.0f img/s wall, "
      "%.0f img/s from CPU time\n",
      steps * 64 / elapsed.count(), 2 * steps * 64 / cpu_seconds);
}

CATCH_TEST_CASE("channels, mean and std are the host's: the backbone carries them, its plugin never "
                "reads them") {
  using flatface::testing::make_backbone_with;
  const auto ref = [](const std::string& table) {
    return flatface::parse_plugin_ref(table, "--backbone").options;
  };
  // Unread keys are typos for a plugin; these three pass through without one.
  auto bgr = make_backbone_with(
      "iresnet-small", ref(R"({ plugin = "iresnet-small", channels = "bgr", mean = [0.4, 0.5, 0.6], std = 0.25 })"));
  CATCH_CHECK(bgr->input_format().bgr);
  CATCH_CHECK(bgr->input_format().mean == std::array<float, 3>{0.4f, 0.5f, 0.6f});
  CATCH_CHECK(bgr->input_format().std == std::array<float, 3>{0.25f, 0.25f, 0.25f});
  // Without them: insightface's RGB, (x/255 - 0.5)/0.5.
  auto rgb = make_backbone("iresnet-small");
  CATCH_CHECK_FALSE(rgb->input_format().bgr);
  CATCH_CHECK(rgb->input_format().mean == std::array<float, 3>{0.5f, 0.5f, 0.5f});
  CATCH_CHECK(rgb->input_format().std == std::array<float, 3>{0.5f, 0.5f, 0.5f});

  using catch_compat::Contains;
  const std::string small = R"({ plugin = "iresnet-small", )";
  CATCH_CHECK_THROWS_WITH(make_backbone_with("iresnet-small", ref(small + R"(channels = "brg" })")),
                          Contains("'channels' must be \"rgb\" or \"bgr\"") && Contains("brg"));
  CATCH_CHECK_THROWS_WITH(make_backbone_with("iresnet-small", ref(small + "mean = [0.5, 0.5] }")),
                          Contains("'mean' takes one number or three") && Contains("not 2"));
  CATCH_CHECK_THROWS_WITH(make_backbone_with("iresnet-small", ref(small + "std = [0.5, 0, 0.5] }")),
                          Contains("'std' must be positive"));
  CATCH_CHECK_THROWS_AS(make_backbone_with("iresnet-small", ref(small + "channel = \"bgr\" }")),
                        flatface::ConfigError);  // a typo of the key is still a typo
}
