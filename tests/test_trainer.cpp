// The trainer on a tiny synthetic problem: every head x perturbation learns, resume equals an
// uninterrupted run bit for bit, failures are recorded, finished runs are skipped.
#include <ATen/ATen.h>
#include <torch/utils.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "catch_compat.hpp"
#include "training/checkpoint.hpp"
#include "plugin_host/factory.hpp"
#include "results/result_store.hpp"
#include "formats/state_dict.hpp"
#include "test_support.hpp"
#include "tiny_grid.hpp"
#include "training/trainer.hpp"

namespace fs = std::filesystem;
using namespace flatface;
using flatface::testing::fresh_dir;
using flatface::testing::tiny_grid;
using flatface::testing::TinyGrid;

namespace {

Registry& registry() {
  static auto reg = open_registry({});
  return *reg;
}

// A tiny grid: a few synthetic identities x 8 images, a narrow IResNet-18 at 56x56.
std::string tiny_toml(const fs::path& out, const std::string& head, const std::string& perturbation,
                      int epochs, double lr = 0.1, int identities = 8) {
  TinyGrid g;
  g.threads.reset();
  g.output = out.string();
  g.train = R"({ plugin = "synthetic", identities = )" + std::to_string(identities) +
            R"(, images_per_identity = 8, nuisance = 0.2 })";
  g.eval = {R"({ name = "pairs", plugin = "synthetic", identities = 8, images_per_identity = 8, )"
            R"(nuisance = 0.2, pairs = 40, verification_identities = 6 })"};
  g.backbone = R"({ plugin = "iresnet-small", width = 8, embedding = 32 })";
  g.epochs = epochs;
  std::ostringstream lr_line;
  lr_line << "lr = " << lr;
  g.train_keys = {lr_line.str(), "milestones = []", "log_every_steps = 0"};
  g.setups = {{"s", head, perturbation}};
  return tiny_grid(g);
}

RunOutcome train(const Experiment& e, TrainerOptions options = {}, Registry& reg = registry()) {
  GridResources shared;
  shared.registry = &reg;
  auto runs = expand_grid(e);
  return train_run(e, runs.at(0), shared, options);
}

// The host's plugins and the test plugins: toy_kit's `test-toy`, a one-pass step that reports its
// loss alone, and toy_statistics' `test-nan-statistic`.
Registry& registry_with_test_plugins() {
  static auto reg = open_registry({std::string(FLATFACE_TEST_PLUGIN_DIR) + "/good",
                                   std::string(FLATFACE_TEST_PLUGIN_DIR) + "/statistics"});
  return *reg;
}

}  // namespace

CATCH_TEST_CASE("every head and perturbation lowers the loss and raises training accuracy") {
  torch::set_num_threads(2);
  const std::vector<std::string> heads = {
      "{ plugin = \"softmax\", s = 16.0 }", "{ plugin = \"cosface\", s = 16.0, m = 0.2 }",
      "{ plugin = \"arcface\", s = 16.0, m = 0.2 }", "{ plugin = \"adaface\", s = 16.0, m = 0.2 }"};
  const std::vector<std::string> perturbations = {
      "{ plugin = \"none\" }", "{ plugin = \"sam\", rho = 0.05 }",
      "{ plugin = \"aace\", rho = 0.05 }", "{ plugin = \"asam\", rho = 0.2 }"};
  for (const auto& h : heads) {
    for (const auto& p : perturbations) {
      CATCH_DYNAMIC_SECTION(h << " x " << p) {
        auto dir = fresh_dir("learn");
        Experiment e = parse_experiment(tiny_toml(dir, h, p, 4, 0.1, 6), "tiny.toml");
        RunOutcome out = train(e);
        CATCH_REQUIRE(out.status == RunStatus::complete);
        const auto& ep = out.record.epochs;
        CATCH_REQUIRE(ep.size() == 4);
        CATCH_CHECK(ep.back().loss < ep.front().loss);
        CATCH_CHECK(ep.back().train_accuracy > ep.front().train_accuracy);
        const bool two_pass = p.find("none") == std::string::npos;
        // AACE's first pass differentiates L_AACE, not L_margin: no ||grad L_margin(w)||.
        CATCH_CHECK(std::isfinite(ep.back().grad_norm) == (p.find("aace") == std::string::npos));
        CATCH_CHECK(std::isfinite(ep.back().loss_perturbed) == two_pass);
        CATCH_CHECK(std::isfinite(ep.back().epsilon_norm) == two_pass);
      }
    }
  }
}

CATCH_TEST_CASE("a run resumed from an interruption reproduces the uninterrupted run exactly") {
  torch::set_num_threads(2);
  const std::string head = "{ plugin = \"adaface\", s = 16.0, m = 0.2 }";
  const std::string pert = "{ plugin = \"sam\", rho = 0.05 }";
  auto a_dir = fresh_dir("resume_a");
  auto b_dir = fresh_dir("resume_b");
  Experiment a = parse_experiment(tiny_toml(a_dir, head, pert, 3), "tiny.toml");
  Experiment b = parse_experiment(tiny_toml(b_dir, head, pert, 3), "tiny.toml");

  RunOutcome full = train(a);
  CATCH_REQUIRE(full.status == RunStatus::complete);

  // 4 batches per epoch: stop mid-epoch 1, then at an epoch boundary, then finish.
  TrainerOptions stop;
  stop.stop_after_steps = 2;
  CATCH_REQUIRE(train(b, stop).status == RunStatus::interrupted);
  stop.stop_after_steps = 6;
  CATCH_REQUIRE(train(b, stop).status == RunStatus::interrupted);
  RunOutcome resumed = train(b);
  CATCH_REQUIRE(resumed.status == RunStatus::complete);

  const auto& x = full.record.epochs;
  const auto& y = read_run_record(resumed.result_path).epochs;
  CATCH_REQUIRE(x.size() == y.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    CATCH_CHECK(x[i].loss == y[i].loss);
    CATCH_CHECK(x[i].loss_perturbed == y[i].loss_perturbed);
    CATCH_CHECK(x[i].grad_norm == y[i].grad_norm);
    CATCH_CHECK(x[i].train_accuracy == y[i].train_accuracy);
    CATCH_CHECK(x[i].benchmarks.at("pairs").accuracy == y[i].benchmarks.at("pairs").accuracy);
  }
  // And the final weights, head statistics included, are identical.
  auto wa = load_tensor_dict_from_checkpoint(checkpoint_path(a, expand_grid(a)[0]), "head");
  auto wb = load_tensor_dict_from_checkpoint(checkpoint_path(b, expand_grid(b)[0]), "head");
  CATCH_REQUIRE(wa.size() == wb.size());
  for (const auto& kv : wa) CATCH_CHECK(at::equal(kv.value(), wb.at(kv.key())));
}

CATCH_TEST_CASE("the efficient strategies lower the loss and raise training accuracy") {
  torch::set_num_threads(2);
  const std::string head = "{ plugin = \"arcface\", s = 16.0, m = 0.2 }";
  for (const std::string p :
       {"{ plugin = \"looksam\", rho = 0.05, k = 2 }", "{ plugin = \"ae-sam\", rho = 0.05 }",
        "{ plugin = \"esam\", rho = 0.05 }", "{ plugin = \"gsam\", rho = 0.05 }",
        "{ plugin = \"looksam\", rho = 0.05, direction = \"aace\" }"}) {
    CATCH_DYNAMIC_SECTION(p) {
      auto dir = fresh_dir("learn_efficient");
      Experiment e = parse_experiment(tiny_toml(dir, head, p, 4, 0.1, 6), "tiny.toml");
      RunOutcome out = train(e);
      CATCH_REQUIRE(out.status == RunStatus::complete);
      const auto& ep = out.record.epochs;
      CATCH_REQUIRE(ep.size() == 4);
      CATCH_CHECK(ep.back().loss < ep.front().loss);
      CATCH_CHECK(ep.back().train_accuracy > ep.front().train_accuracy);
      CATCH_CHECK(std::isfinite(ep.back().loss_perturbed));
      CATCH_CHECK(std::isfinite(ep.back().epsilon_norm));
      CATCH_CHECK(out.steps == 4 * 3);  // 48 images, batches of 16
      CATCH_CHECK(out.second_pass_steps >= 1);
    }
  }
}

CATCH_TEST_CASE("the result file records per epoch the fraction of steps that made a second pass") {
  torch::set_num_threads(2);
  const std::string head = "{ plugin = \"arcface\", s = 16.0, m = 0.2 }";
  // 64 images in batches of 16: steps 0-3 in epoch 1, 4-7 in epoch 2. LookSAM refreshes at
  // the global steps that k divides.
  const std::vector<std::pair<std::string, std::vector<double>>> cases{
      {"{ plugin = \"none\" }", {0.0, 0.0}},
      {"{ plugin = \"sam\", rho = 0.05 }", {1.0, 1.0}},
      {"{ plugin = \"looksam\", rho = 0.05, k = 2 }", {0.5, 0.5}},
      {"{ plugin = \"looksam\", rho = 0.05, k = 3 }", {0.5, 0.25}},  // steps 0, 3 | 6
  };
  for (const auto& [pert, fractions] : cases) {
    CATCH_CAPTURE(pert);
    auto dir = fresh_dir("second_pass");
    Experiment e = parse_experiment(tiny_toml(dir, head, pert, 2), "tiny.toml");
    RunOutcome out = train(e);
    CATCH_REQUIRE(out.status == RunStatus::complete);
    const auto ep = read_run_record(out.result_path).epochs;
    CATCH_REQUIRE(ep.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) CATCH_CHECK(ep[i].second_pass_fraction == fractions[i]);
    // The perturbed pass's statistics average over the steps that made one (NaN when none did).
    CATCH_CHECK(std::isfinite(ep[1].loss_perturbed) == (fractions[1] > 0));
    CATCH_CHECK(std::isfinite(ep[1].grad_norm));
    CATCH_CHECK(out.second_pass_steps ==
                static_cast<std::int64_t>(4 * (fractions[0] + fractions[1])));
  }
}

CATCH_TEST_CASE(
    "a LookSAM or AE-SAM run resumed from interruptions reproduces the uninterrupted run") {
  torch::set_num_threads(2);
  const std::string head = "{ plugin = \"arcface\", s = 16.0, m = 0.2 }";
  for (const std::string pert :
       {"{ plugin = \"looksam\", rho = 0.05, k = 3 }",
        "{ plugin = \"ae-sam\", rho = 0.05, lambda1 = 0.0, lambda2 = 0.0 }"}) {
    CATCH_CAPTURE(pert);
    auto a_dir = fresh_dir("resume_eff_a");
    auto b_dir = fresh_dir("resume_eff_b");
    Experiment a = parse_experiment(tiny_toml(a_dir, head, pert, 3), "tiny.toml");
    Experiment b = parse_experiment(tiny_toml(b_dir, head, pert, 3), "tiny.toml");
    RunOutcome full = train(a);
    CATCH_REQUIRE(full.status == RunStatus::complete);
    // Mid-epoch (inside LookSAM's period) and at an epoch boundary, then to the end.
    TrainerOptions stop;
    stop.stop_after_steps = 2;
    CATCH_REQUIRE(train(b, stop).status == RunStatus::interrupted);
    stop.stop_after_steps = 6;
    CATCH_REQUIRE(train(b, stop).status == RunStatus::interrupted);
    RunOutcome resumed = train(b);
    CATCH_REQUIRE(resumed.status == RunStatus::complete);
    const auto& x = full.record.epochs;
    const auto& y = read_run_record(resumed.result_path).epochs;
    CATCH_REQUIRE(x.size() == y.size());
    auto same = [](double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); };
    for (std::size_t i = 0; i < x.size(); ++i) {
      CATCH_CHECK(x[i].loss == y[i].loss);
      CATCH_CHECK(same(x[i].loss_perturbed, y[i].loss_perturbed));  // NaN: no second pass
      CATCH_CHECK(x[i].second_pass_fraction == y[i].second_pass_fraction);
      CATCH_CHECK(x[i].train_accuracy == y[i].train_accuracy);
    }
    auto wa = load_tensor_dict_from_checkpoint(checkpoint_path(a, expand_grid(a)[0]), "head");
    auto wb = load_tensor_dict_from_checkpoint(checkpoint_path(b, expand_grid(b)[0]), "head");
    for (const auto& kv : wa) CATCH_CHECK(at::equal(kv.value(), wb.at(kv.key())));
  }
}

CATCH_TEST_CASE("the same seed gives the same numbers on the CPU and another seed differs") {
  torch::set_num_threads(2);
  const std::string head = "{ plugin = \"arcface\", s = 16.0, m = 0.2 }";
  const std::string pert = "{ plugin = \"sam\", rho = 0.05 }";
  auto run_with_seed = [&](const std::string& dir, int seed) {
    Experiment e = parse_experiment(tiny_toml(fresh_dir(dir), head, pert, 2), "tiny.toml",
                                    {"experiment.seeds=[" + std::to_string(seed) + "]"});
    RunOutcome out = train(e);
    CATCH_REQUIRE(out.status == RunStatus::complete);
    return out.record.epochs;
  };
  const auto a = run_with_seed("seed_a", 3);
  const auto b = run_with_seed("seed_b", 3);
  const auto c = run_with_seed("seed_c", 4);
  for (std::size_t i = 0; i < a.size(); ++i) {
    CATCH_CHECK(a[i].loss == b[i].loss);
    CATCH_CHECK(a[i].loss_perturbed == b[i].loss_perturbed);
    CATCH_CHECK(a[i].train_accuracy == b[i].train_accuracy);
    CATCH_CHECK(a[i].benchmarks.at("pairs").accuracy == b[i].benchmarks.at("pairs").accuracy);
  }
  // Another seed: other initial weights, data order and flips, so other losses from the start.
  CATCH_CHECK(a[0].loss != c[0].loss);
  CATCH_CHECK(a[1].loss != c[1].loss);
  CATCH_CHECK(a[0].grad_norm != c[0].grad_norm);
}

CATCH_TEST_CASE(
    "[train] flip = false trains on the images as they are, which changes the numbers") {
  torch::set_num_threads(2);
  const std::string head = "{ plugin = \"arcface\", s = 16.0, m = 0.2 }";
  const std::string pert = "{ plugin = \"none\" }";
  auto first_epoch = [&](const std::string& dir, const std::vector<std::string>& overrides) {
    Experiment e =
        parse_experiment(tiny_toml(fresh_dir(dir), head, pert, 1), "tiny.toml", overrides);
    RunOutcome out = train(e);
    CATCH_REQUIRE(out.status == RunStatus::complete);
    return out.record.epochs.at(0);
  };
  const auto flipped = first_epoch("flip_on", {});
  const auto plain = first_epoch("flip_off", {"train.flip=false"});
  const auto again = first_epoch("flip_off_again", {"train.flip=false"});
  // Same seed, so the same weights and batches: only the mirrored images differ.
  CATCH_CHECK(flipped.loss != plain.loss);
  CATCH_CHECK(plain.loss == again.loss);
}

CATCH_TEST_CASE("a non-finite loss fails the run at its step and records why") {
  torch::set_num_threads(2);
  auto dir = fresh_dir("nan");
  Experiment e = parse_experiment(
      tiny_toml(dir, "{ plugin = \"softmax\", s = 16.0 }", "{ plugin = \"none\" }", 2, 1e30),
      "tiny.toml");
  RunOutcome out = train(e);
  CATCH_REQUIRE(out.status == RunStatus::failed);
  RunRecord rec = read_run_record(out.result_path);
  CATCH_CHECK(rec.status == RunState::failed);
  CATCH_CHECK(rec.failure_reason.find("non-finite") != std::string::npos);
  CATCH_CHECK(rec.failed_step >= 1);
  // A failed run is not retried unless asked.
  CATCH_CHECK(train(e).status == RunStatus::failed);
}

CATCH_TEST_CASE(
    "a one-pass strategy that reports no gradient norm trains; its epochs store it as NaN") {
  torch::set_num_threads(2);
  auto dir = fresh_dir("no_grad_norm");
  Experiment e = parse_experiment(
      tiny_toml(dir, "{ plugin = \"arcface\", s = 16.0, m = 0.2 }", "{ plugin = \"test-toy\" }", 2),
      "tiny.toml");
  RunOutcome out = train(e, {}, registry_with_test_plugins());
  CATCH_REQUIRE(out.status == RunStatus::complete);
  const auto ep = read_run_record(out.result_path).epochs;
  CATCH_REQUIRE(ep.size() == 2);
  for (const auto& m : ep) {
    CATCH_CHECK(std::isfinite(m.loss));
    // Not computed by any step of the epoch: the result file's NaN.
    CATCH_CHECK(std::isnan(m.grad_norm));
    CATCH_CHECK(std::isnan(m.loss_perturbed));
    CATCH_CHECK(std::isnan(m.epsilon_norm));
    CATCH_CHECK(m.second_pass_fraction == 0);
  }
}

CATCH_TEST_CASE("a computed NaN statistic fails the run at its first step, naming the statistic") {
  torch::set_num_threads(2);
  for (const std::string statistic : {"loss", "grad_norm"}) {
    CATCH_CAPTURE(statistic);
    auto dir = fresh_dir("nan_" + statistic);
    Experiment e = parse_experiment(
        tiny_toml(dir, "{ plugin = \"arcface\", s = 16.0, m = 0.2 }",
                  "{ plugin = \"test-nan-statistic\", statistic = \"" + statistic + "\" }", 1),
        "tiny.toml");
    RunOutcome out = train(e, {}, registry_with_test_plugins());
    CATCH_REQUIRE(out.status == RunStatus::failed);
    RunRecord rec = read_run_record(out.result_path);
    CATCH_CHECK(rec.failure_reason == "non-finite " + statistic + " (nan) at epoch 1 step 1");
    CATCH_CHECK(rec.failed_step == 0);
  }
}

CATCH_TEST_CASE("a complete run is skipped and its file left untouched") {
  torch::set_num_threads(2);
  auto dir = fresh_dir("skip");
  Experiment e = parse_experiment(
      tiny_toml(dir, "{ plugin = \"arcface\", s = 16.0, m = 0.2 }", "{ plugin = \"none\" }", 1),
      "tiny.toml");
  RunOutcome first = train(e);
  CATCH_REQUIRE(first.status == RunStatus::complete);
  auto read_bytes = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  std::string before = read_bytes(first.result_path);
  CATCH_CHECK(train(e).status == RunStatus::skipped);
  CATCH_CHECK(read_bytes(first.result_path) == before);
}

CATCH_TEST_CASE(
    "export writes the backbone with insightface names in a file Python's torch.load reads") {
  torch::set_num_threads(2);
  auto dir = fresh_dir("export");
  Experiment e = parse_experiment(
      tiny_toml(dir, "{ plugin = \"arcface\", s = 16.0, m = 0.2 }", "{ plugin = \"none\" }", 1),
      "tiny.toml");
  CATCH_REQUIRE(train(e).status == RunStatus::complete);
  const std::string ckpt = checkpoint_path(e, expand_grid(e)[0]);
  const std::string out = (dir / "backbone.pt").string();
  std::string cmd =
      std::string(FLATFACE_CLI) + " export " + ckpt + " --out " + out + " > /dev/null";
  CATCH_REQUIRE(std::system(cmd.c_str()) == 0);

  // The same tensors as the checkpoint's backbone, under insightface's parameter names.
  auto expected = load_tensor_dict_from_checkpoint(ckpt, "backbone");
  std::ofstream py(dir / "check.py");
  py << "import sys, torch\n"
        "d = torch.load(sys.argv[1], weights_only=True)\n"
        "need = ['conv1.weight', 'bn1.running_mean', 'prelu.weight', 'layer1.0.bn1.weight',\n"
        "        'layer1.0.conv1.weight', 'layer1.0.prelu.weight', "
        "'layer2.0.downsample.0.weight',\n"
        "        'layer2.0.downsample.1.running_var', 'bn2.weight', 'fc.weight', "
        "'features.weight']\n"
        "missing = [k for k in need if k not in d]\n"
        "assert not missing, missing\n"
        "assert len(d) == int(sys.argv[2]), (len(d), sys.argv[2])\n"
        "got, want = float(d['conv1.weight'].double().sum()), float(sys.argv[3])\n"
        "assert abs(got - want) <= 1e-9 * max(1.0, abs(want)), ('conv1 differs', got, want)\n";
  py.close();
  double conv1_sum = expected.at("conv1.weight").to(at::kDouble).sum().item<double>();
  std::ostringstream check;
  check.precision(17);
  check << FLATFACE_PYTHON << " " << (dir / "check.py").string() << " " << out << " "
        << expected.size() << " " << conv1_sum;
  CATCH_CHECK(std::system(check.str().c_str()) == 0);
}
