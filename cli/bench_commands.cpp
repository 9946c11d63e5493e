// flatface bench: the training step of every setup of an experiment, the loader and evaluation,
// measured in one process after warm-up; a table on stdout and, with --json, a JSON file that
// bench/baseline.py reads to run the same steps in Python.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <variant>

#include "bench/bench.hpp"
#include "common.hpp"
#include "flatface/torch_compat.hpp"
#include "flatface/version.hpp"
#include "plugin_host/factory.hpp"
#include "training/trainer.hpp"

namespace flatface::cli {

namespace {

struct BenchArgs {
  ExperimentArgs experiment;
  StepBenchOptions step;            // --setup fills step.setups
  std::vector<int> loader_threads;  // empty: 1 and the compute threads
  std::int64_t loader_batches = 30;
  std::vector<std::string> loader_data;  // extra training sets, inline TOML tables
  int eval_repeats = 3;
  std::vector<std::string> skip;
  std::string json;
};
BenchArgs bench_args;

bool skipped(const BenchArgs& a, const std::string& part) {
  return std::find(a.skip.begin(), a.skip.end(), part) != a.skip.end();
}

// ---- the JSON file -------------------------------------------------------------------------

using Json = nlohmann::ordered_json;

// Timings and ratios to 6 significant digits.
Json number(double v) {
  return json_number(v, 6);
}

Json number(std::optional<double> v) {
  return v ? number(*v) : nullptr;
}

Json scalar_json(const Options::Scalar& v) {
  if (const auto* x = std::get_if<double>(&v)) return number(*x);
  return std::visit([](const auto& x) { return Json(x); }, v);
}

// {"plugin": NAME, key: value, ...} of a plugin reference.
Json plugin_json(const std::string& plugin, const Options& options) {
  Json out{{"plugin", plugin}};
  for (const auto& key : options.keys()) {
    if (key == "plugin" || key == "bn_second_pass" || key == "epsilon") continue;
    std::visit(
        [&out, &key](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::vector<Options::Scalar>>) {
            out[key] = Json::array();
            for (const auto& item : x) out[key].push_back(scalar_json(item));
          } else {
            out[key] = scalar_json(x);
          }
        },
        options.find(key)->data);
  }
  return out;
}

std::string machine_text() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  std::string cpu;
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);) {
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  return std::string(host) + ", " + (cpu.empty() ? "unknown CPU" : cpu) + ", " +
         std::to_string(std::thread::hardware_concurrency()) + " cores";
}

// ---- the command: one part after another -------------------------------------------------

// A ratio for the tables: 6 significant digits cut to 5 characters ("1.984"), or "-".
std::string ratio_text(std::optional<double> v) {
  if (!v) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", *v);
  return std::string(text).substr(0, 5);
}

void print_steps(const Experiment& e, const BenchArgs& args, const StepBench& steps, int threads) {
  std::printf(
      "# training step: %s, %s, batch %lld, %lldx%lld, %lld classes, %d threads, "
      "%s, %d steps after %d warm-up (interleaved); x plain = median / median of the plain "
      "step; amortised ms = f median(two-pass steps) + (1 - f) median(one-pass steps), f the "
      "share of steps that made a second pass, and its ratio to the plain step's\n",
      e.backbone.plugin.c_str(), steps.device.c_str(), static_cast<long long>(steps.batch_size),
      static_cast<long long>(steps.input_size), static_cast<long long>(steps.input_size),
      static_cast<long long>(steps.classes), threads, e.train.precision.c_str(), args.step.steps,
      args.step.warmup);
  std::printf("%-26s %-12s %10s %10s %10s %10s %9s %9s %9s %10s %9s\n", "setup", "perturb",
              "median ms", "p10 ms", "p90 ms", "mean ms", "img/s", "2nd pass", "x plain",
              "amort. ms", "amortised");
  for (const auto& s : steps.steps) {
    std::printf("%-26s %-12s %10.2f %10.2f %10.2f %10.2f %9.1f %8.0f%% %9s %10.2f %9s\n",
                s.setup.c_str(), s.perturbation.c_str(), s.ms.median, s.ms.p10, s.ms.p90, s.ms.mean,
                s.images_per_second, 100 * s.second_pass_fraction,
                ratio_text(s.ratio_to_plain).c_str(), s.amortised_ms,
                ratio_text(s.amortised_ratio).c_str());
  }
}

// The settings bench/baseline.py needs to run the same steps.
Json config_json(const Experiment& e, const BenchArgs& args, const StepBench& steps, int threads) {
  Json setups = Json::array();
  for (const auto& step : steps.steps) {  // the setups measured, as measured
    RunSpec run;
    run.setup = step.setup_index;
    run.swept = step.swept;
    const Experiment measured = run_experiment(e, run);
    const Setup& s = measured.setups[run.setup];
    Json perturbation = plugin_json(s.perturbation.plugin, perturbation_options(measured, run));
    perturbation["bn_second_pass"] = s.bn_second_pass;
    setups.push_back({{"name", s.name},
                      {"head", plugin_json(s.head.plugin, s.head.options)},
                      {"perturbation", perturbation}});
  }
  return {{"device", steps.device},
          {"threads", threads},
          {"batch_size", steps.batch_size},
          {"classes", steps.classes},
          {"precision", e.train.precision},
          {"steps", args.step.steps},
          {"warmup", args.step.warmup},
          {"seed", args.step.seed},
          {"backbone", plugin_json(e.backbone.plugin, e.backbone.options)},
          {"input", steps.input_size},
          {"train",
           {{"lr", number(e.train.lr)},
            {"momentum", number(e.train.momentum)},
            {"weight_decay", number(e.train.weight_decay)},
            {"decay_bn_and_bias", e.train.decay_bn_and_bias}}},
          {"setups", setups}};
}

Json steps_json(const StepBench& steps) {
  Json out = Json::array();
  for (const auto& s : steps.steps) {
    Json samples = Json::array();
    for (double ms : s.samples_ms) samples.push_back(number(ms));
    out.push_back({{"setup", s.setup},
                   {"head", s.head},
                   {"perturbation", s.perturbation},
                   {"two_pass", s.two_pass},
                   {"median_ms", number(s.ms.median)},
                   {"p10_ms", number(s.ms.p10)},
                   {"p90_ms", number(s.ms.p90)},
                   {"min_ms", number(s.ms.min)},
                   {"images_per_second", number(s.images_per_second)},
                   {"ratio_to_plain", number(s.ratio_to_plain)},
                   {"mean_ms", number(s.ms.mean)},
                   {"amortised_ms", number(s.amortised_ms)},
                   {"second_pass_fraction", number(s.second_pass_fraction)},
                   {"amortised_ratio", number(s.amortised_ratio)},
                   {"loss_first", number(s.loss_first)},
                   {"loss_last", number(s.loss_last)},
                   {"samples_ms", samples},
                   {"samples_second_pass", s.samples_second_pass}});
  }
  return out;
}

// Images per second of the training set (and of each --loader-data set) at each thread count,
// against the plain step's rate at the compute thread count, which the loader must outpace.
Json bench_loaders(const Experiment& e, const Registry& reg, const BenchArgs& args,
                   const StepBench& steps, int threads) {
  std::vector<int> counts = args.loader_threads;
  if (counts.empty()) counts = threads > 1 ? std::vector<int>{1, threads} : std::vector<int>{1};
  std::vector<std::pair<std::string, PluginRef>> sets{{e.train_data.plugin, e.train_data}};
  for (std::size_t i = 0; i < args.loader_data.size(); ++i) {
    PluginRef ref =
        parse_plugin_ref(args.loader_data[i], "--loader-data #" + std::to_string(i + 1));
    sets.emplace_back(ref.plugin, ref);
  }
  const std::int64_t input = make_backbone(reg, e.backbone)->input_size();
  double consumed = 0;
  for (const auto& s : steps.steps)
    if (!s.two_pass && consumed == 0) consumed = s.images_per_second;
  std::printf("\n# loader: batch %lld, resized to %lldx%lld, flip + normalise%s\n",
              static_cast<long long>(e.train.batch_size), static_cast<long long>(input),
              static_cast<long long>(input),
              consumed > 0 ? "; x step = loader img/s / plain step img/s" : "");
  std::printf("%-48s %8s %10s %10s\n", "dataset", "threads", "img/s", "x step");
  Json out = Json::array();
  for (const auto& [name, ref] : sets) {
    auto data = make_train_set(reg, ref, input, 0);
    const std::string label = data->describe().substr(0, 48);
    for (int t : counts) {
      LoaderTiming l = bench_loader(data, label, e.train.batch_size, input, t, args.loader_batches);
      std::optional<double> ratio;
      if (consumed > 0 && t == threads) ratio = l.images_per_second / consumed;
      std::printf("%-48s %8d %10.0f %10s\n", label.c_str(), t, l.images_per_second,
                  ratio_text(ratio).c_str());
      out.push_back({{"dataset", data->describe()},
                     {"plugin", name},
                     {"threads", t},
                     {"images", l.images},
                     {"seconds", number(l.seconds)},
                     {"images_per_second", number(l.images_per_second)},
                     {"ratio_to_plain_step", number(ratio)}});
    }
  }
  return out;
}

Json bench_evaluation(const Experiment& e, const Registry& reg, const BenchArgs& args) {
  torch::manual_seed(static_cast<std::uint64_t>(args.step.seed));
  auto backbone = make_backbone(reg, e.backbone);
  const std::string device = resolve_device(e.device);
  backbone->to(c10::Device(device));
  std::printf("\n# evaluation: flip-sum embeddings + 10-fold protocol, median of %d\n",
              args.eval_repeats);
  std::printf("%-24s %8s %10s %10s\n", "benchmark", "pairs", "seconds", "pairs/s");
  Json out = Json::array();
  for (const auto& eval : e.eval) {
    auto set = make_verification_set(reg, eval.data, backbone->input_size(), 0);
    EvalTiming t =
        bench_eval(*backbone, *set, eval.name, e.train.batch_size, device, args.eval_repeats);
    std::printf("%-24s %8zu %10.3f %10.0f\n", t.benchmark.c_str(), t.pairs, t.seconds.median,
                t.pairs_per_second);
    out.push_back({{"benchmark", t.benchmark},
                   {"pairs", t.pairs},
                   {"median_seconds", number(t.seconds.median)},
                   {"pairs_per_second", number(t.pairs_per_second)}});
  }
  return out;
}

Json bench_flatness(const Experiment& e, const Registry& reg, const BenchArgs& args) {
  LambdaMaxTiming l = bench_lambda_max(e, reg, args.step);
  std::printf(
      "\n# flatness: one lambda_max estimate (power iteration, tolerance 1e-3, at most 100 "
      "Hessian-vector products, BN eval, one batch of %lld) of %s, against plain training "
      "steps of the same model and batch (median of %d)\n",
      static_cast<long long>(e.train.batch_size), l.setup.c_str(), args.step.steps);
  std::printf("%-26s %10s %12s %10s %12s %14s\n", "setup", "products", "lambda_max", "seconds",
              "ms/product", "training steps");
  std::printf("%-26s %10lld %12.4g %10.2f %12.1f %14.1f\n", l.setup.c_str(),
              static_cast<long long>(l.iterations), l.eigenvalue, l.seconds, l.product_ms,
              l.steps_per_estimate);
  return {{"setup", l.setup},
          {"products", l.iterations},
          {"eigenvalue", number(l.eigenvalue)},
          {"seconds", number(l.seconds)},
          {"step_median_ms", number(l.step_ms.median)},
          {"product_ms", number(l.product_ms)},
          {"training_steps", number(l.steps_per_estimate)}};
}

int bench(const Globals& g, const BenchArgs& args) {
  Experiment e = args.experiment.load();
  const int threads = apply_threads(g, &e);
  auto reg = open_registry(g, &e);
  Json doc{{"tool", "flatface"},
           {"version", FLATFACE_VERSION_STRING},
           {"torch_version", torch_version_string()},
           {"date", utc_timestamp()},
           {"machine", machine_text()},
           {"experiment", e.file}};
  StepBench steps;
  if (!skipped(args, "step")) {
    steps = bench_steps(e, *reg, args.step);
    print_steps(e, args, steps, threads);
    doc["config"] = config_json(e, args, steps, threads);
    doc["parameters"] = steps.parameters;
    doc["steps"] = steps_json(steps);
  }
  if (!skipped(args, "loader")) doc["loader"] = bench_loaders(e, *reg, args, steps, threads);
  if (!skipped(args, "eval") && !e.eval.empty()) doc["eval"] = bench_evaluation(e, *reg, args);
  if (!skipped(args, "flatness")) doc["lambda_max"] = bench_flatness(e, *reg, args);

  const double rss = peak_rss_mib();
  const bool cuda = resolve_device(e.device).rfind("cuda", 0) == 0;
  std::printf("\npeak RSS %.1f MiB%s\n", rss,
              cuda ? " (host memory; GPU memory is not included)" : "");
  doc["peak_rss_mb"] = number(rss);
  if (!args.json.empty()) {
    std::ofstream out(args.json);
    out << doc.dump(2) << '\n';
    if (!out) throw RuntimeError("cannot write " + args.json);
    std::printf("wrote %s\n", args.json.c_str());
  }
  return 0;
}

}  // namespace

void bench_options(CLI::App& cmd) {
  bench_args.experiment.add_to(cmd);
  cmd.add_option("--setup", bench_args.step.setups, "Measure only this setup (repeatable)");
  cmd.add_option("--classes", bench_args.step.classes,
                 "Identities of the class-weight matrix (default: the training set's)");
  cmd.add_option("--steps", bench_args.step.steps, "Timed steps per setup")->capture_default_str();
  cmd.add_option("--warmup", bench_args.step.warmup, "Untimed steps per setup first")
      ->capture_default_str();
  cmd.add_option("--seed", bench_args.step.seed, "Seed of the weights and the batch")
      ->capture_default_str();
  cmd.add_option("--loader-threads", bench_args.loader_threads,
                 "Loader thread counts to measure (default: 1 and --threads)")
      ->delimiter(',');
  cmd.add_option("--loader-batches", bench_args.loader_batches,
                 "Batches timed per loader measurement")
      ->capture_default_str();
  cmd.add_option("--loader-data", bench_args.loader_data,
                 "Another training set to time the loader on, as an inline TOML table, e.g. "
                 "'{ plugin = \"image-folder\", path = \"faces\" }' (repeatable)");
  cmd.add_option("--eval-repeats", bench_args.eval_repeats, "Timed evaluations per benchmark")
      ->capture_default_str();
  cmd.add_option("--skip", bench_args.skip,
                 "Leave out a part: step, loader, eval, flatness (repeatable)")
      ->check(CLI::IsMember({"step", "loader", "eval", "flatness"}));
  cmd.add_option("--json", bench_args.json, "Also write the measurements to this JSON file");
}

int bench_command(const Globals& g) {
  return bench(g, bench_args);
}

}  // namespace flatface::cli
