#include "bench/bench.hpp"

#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <c10/core/Device.h>
#include <sys/resource.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "training/device_model.hpp"
#include "evaluation/evaluation.hpp"
#include "flatness/hessian.hpp"
#include "flatness/model_loss.hpp"
#include "plugin_host/factory.hpp"
#include "data/loader.hpp"
#include "training/trainer.hpp"

namespace flatface {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Waits for queued GPU work, so a wall-clock interval covers the kernels it launched.
void synchronize(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.has_index() ? device.index() : -1);
}

// One setup's model, ready to step.
struct Cell {
  std::unique_ptr<Perturbation> strategy;
  DeviceModel model;
  StepTiming timing;
};

}  // namespace

double percentile(std::vector<double> samples, double q) {
  if (samples.empty()) return std::nan("");
  std::sort(samples.begin(), samples.end());
  const double rank = q / 100.0 * static_cast<double>(samples.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(rank));
  const std::size_t hi = std::min(lo + 1, samples.size() - 1);
  return samples[lo] + (rank - static_cast<double>(lo)) * (samples[hi] - samples[lo]);
}

TimingSummary summarize(std::vector<double> samples) {
  TimingSummary s;
  s.n = samples.size();
  if (samples.empty()) return s;
  s.median = percentile(samples, 50);
  s.p10 = percentile(samples, 10);
  s.p90 = percentile(samples, 90);
  s.min = *std::min_element(samples.begin(), samples.end());
  s.max = *std::max_element(samples.begin(), samples.end());
  s.mean = std::accumulate(samples.begin(), samples.end(), 0.0) / static_cast<double>(s.n);
  return s;
}

double amortised_ms(const std::vector<double>& samples_ms, const std::vector<bool>& second_pass) {
  std::vector<double> one, two;
  for (std::size_t i = 0; i < samples_ms.size(); ++i)
    (second_pass[i] ? two : one).push_back(samples_ms[i]);
  const double n = static_cast<double>(samples_ms.size());
  double cost = 0;
  if (!one.empty()) cost += static_cast<double>(one.size()) / n * percentile(one, 50);
  if (!two.empty()) cost += static_cast<double>(two.size()) / n * percentile(two, 50);
  return cost;
}

namespace {

// One cell per selected setup, each at the first run of its grid (the first value of each swept
// option) with `options.seed`; fills the bench's input size, class count and parameter count.
std::vector<Cell> make_cells(const Experiment& e, const Registry& reg,
                             const StepBenchOptions& options, const c10::Device& device,
                             StepBench& out) {
  std::vector<Cell> cells;
  for (std::size_t s = 0; s < e.setups.size(); ++s) {
    const Setup& setup = e.setups[s];
    if (!options.setups.empty() &&
        std::find(options.setups.begin(), options.setups.end(), setup.name) == options.setups.end())
      continue;
    torch::manual_seed(static_cast<std::uint64_t>(options.seed));
    auto backbone = make_backbone(reg, e.backbone);
    out.input_size = backbone->input_size();
    if (out.classes == 0) {
      out.classes = options.classes > 0 ? options.classes
                                        : make_train_set(reg, e.train_data, out.input_size,
                                                         static_cast<std::uint64_t>(options.seed))
                                              ->num_classes();
    }
    // A setup's first run of the grid is measured: the first value of each swept option.
    RunSpec run;
    for (const auto& r : expand_grid(e))
      if (r.setup == s) {
        run = r;
        break;
      }
    run.seed = options.seed;
    const Experiment re = run_experiment(e, run);
    auto head = make_head(reg, re.setups[s].head, backbone->embedding_dim(), out.classes);
    Cell c;
    c.strategy = make_perturbation(reg, setup.perturbation.plugin, perturbation_options(re, run),
                                   static_cast<std::uint64_t>(options.seed));
    c.model = place_on_device(backbone, head, e.train, setup.bn_second_pass, device);
    c.timing.setup_index = s;
    c.timing.rho = run.rho;
    c.timing.swept = run.swept;
    c.timing.setup = setup.name;
    c.timing.head = setup.head.plugin;
    c.timing.perturbation = setup.perturbation.plugin;
    c.timing.two_pass = c.strategy->two_pass();
    if (out.parameters == 0) {
      for (const auto& p : c.model.step->parameters()) out.parameters += p.numel();
    }
    cells.push_back(std::move(c));
  }
  return cells;
}

// Round-robin: each round times one step of every setup, so drift in the machine's speed
// reaches all of them alike and their ratios stay meaningful. The first `warmup` rounds are not
// recorded.
void time_steps(std::vector<Cell>& cells, const at::Tensor& images, const at::Tensor& labels,
                const StepBenchOptions& options, const c10::Device& device) {
  const int rounds = options.warmup + options.steps;
  for (int round = 0; round < rounds; ++round) {
    for (auto& c : cells) {
      c.model.step->set_progress(round, rounds);
      synchronize(device);
      const auto t = Clock::now();
      StepStats stats = c.model.step->run(*c.strategy, images, labels);
      synchronize(device);
      const double ms = 1e3 * seconds_since(t);
      if (round < options.warmup) continue;
      if (round == options.warmup) c.timing.loss_first = stats.loss;
      c.timing.loss_last = stats.loss;
      c.timing.samples_ms.push_back(ms);
      c.timing.samples_second_pass.push_back(stats.second_pass);
      if (stats.second_pass) c.timing.second_pass_fraction += 1;
    }
  }
}

// Each cell's summary, and its ratios to the plain (one-pass) setup with the same head.
void summarize_cells(std::vector<Cell>& cells, std::int64_t batch_size) {
  for (auto& c : cells) {
    c.timing.ms = summarize(c.timing.samples_ms);
    c.timing.amortised_ms = amortised_ms(c.timing.samples_ms, c.timing.samples_second_pass);
    c.timing.images_per_second = static_cast<double>(batch_size) / (c.timing.ms.median / 1e3);
    if (!c.timing.samples_ms.empty())
      c.timing.second_pass_fraction /= static_cast<double>(c.timing.samples_ms.size());
  }
  for (auto& c : cells) {
    for (const auto& plain : cells) {
      if (!plain.timing.two_pass && plain.timing.head == c.timing.head) {
        c.timing.ratio_to_plain = c.timing.ms.median / plain.timing.ms.median;
        c.timing.amortised_ratio = c.timing.amortised_ms / plain.timing.amortised_ms;
        break;
      }
    }
  }
}

}  // namespace

StepBench bench_steps(const Experiment& e, const Registry& reg, const StepBenchOptions& options) {
  StepBench out;
  out.device = resolve_device(e.device);
  const c10::Device device(out.device);
  out.batch_size = e.train.batch_size;

  std::vector<Cell> cells = make_cells(e, reg, options, device, out);
  if (cells.empty()) throw ConfigError("bench: no setup of " + e.file + " matches the selection");

  torch::manual_seed(static_cast<std::uint64_t>(options.seed));
  at::Tensor images = at::randn({out.batch_size, 3, out.input_size, out.input_size}).to(device);
  if (device.is_cuda()) images = images.contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor labels = at::randint(out.classes, {out.batch_size}, at::kLong).to(device);

  time_steps(cells, images, labels, options, device);
  summarize_cells(cells, out.batch_size);
  for (auto& c : cells) out.steps.push_back(std::move(c.timing));
  return out;
}

LoaderTiming bench_loader(std::shared_ptr<const TrainSet> data, const std::string& name,
                          std::int64_t batch_size, std::int64_t input_size, int threads,
                          std::int64_t batches) {
  LoaderOptions lo;
  lo.batch_size = batch_size;
  lo.input_size = input_size;
  lo.threads = threads;
  Loader loader(std::move(data), lo);
  if (loader.batches_per_epoch() == 0) {
    throw ConfigError("bench: '" + name + "' holds fewer images than one batch of " +
                      std::to_string(batch_size));
  }
  std::int64_t epoch = 0;
  loader.start_epoch(epoch);
  auto next = [&] {
    auto b = loader.next();
    if (!b) {
      loader.start_epoch(++epoch);
      b = loader.next();
    }
    return b;
  };
  next();  // warm-up: threads started, the first batches in flight
  LoaderTiming r;
  r.dataset = name;
  r.threads = threads;
  const auto t = Clock::now();
  for (std::int64_t i = 0; i < batches; ++i) r.images += next()->images.size(0);
  r.seconds = seconds_since(t);
  r.images_per_second = static_cast<double>(r.images) / r.seconds;
  return r;
}

EvalTiming bench_eval(Backbone& backbone, const VerificationSet& set, const std::string& name,
                      std::int64_t batch_size, const std::string& device_name, int repeats) {
  const c10::Device device(device_name);
  EvalTiming r;
  r.benchmark = name;
  r.pairs = set.num_pairs();
  std::vector<double> seconds;
  for (int i = 0; i <= repeats; ++i) {
    synchronize(device);
    const auto t = Clock::now();
    evaluate(backbone, set, batch_size, device);
    if (i > 0) seconds.push_back(seconds_since(t));  // the first run warms up
  }
  r.seconds = summarize(seconds);
  r.pairs_per_second = static_cast<double>(r.pairs) / r.seconds.median;
  return r;
}

LambdaMaxTiming bench_lambda_max(const Experiment& e, const Registry& reg,
                                 const StepBenchOptions& options) {
  const c10::Device device(resolve_device(e.device));
  // The first run of a one-pass setup (its step is the plain training step), else of the first.
  const std::vector<RunSpec> grid = expand_grid(e);
  RunSpec run = grid.front();
  for (const auto& r : grid) {
    const Experiment re = run_experiment(e, r);
    if (!make_perturbation(reg, re.setups[r.setup].perturbation.plugin, perturbation_options(re, r))
             ->two_pass()) {
      run = r;
      break;
    }
  }
  const Experiment re = run_experiment(e, run);
  const Setup& setup = re.setups[run.setup];
  torch::manual_seed(static_cast<std::uint64_t>(options.seed));
  auto backbone = make_backbone(reg, re.backbone);
  const std::int64_t input = backbone->input_size();
  const std::int64_t classes =
      options.classes > 0
          ? options.classes
          : make_train_set(reg, e.train_data, input, static_cast<std::uint64_t>(options.seed))
                ->num_classes();
  auto head = make_head(reg, setup.head, backbone->embedding_dim(), classes);
  auto strategy = make_perturbation(reg, setup.perturbation.plugin, perturbation_options(re, run));
  DeviceModel model = place_on_device(backbone, head, re.train, setup.bn_second_pass, device);
  at::Tensor images = at::randn({re.train.batch_size, 3, input, input}).to(device);
  at::Tensor labels = at::randint(classes, {re.train.batch_size}, at::kLong).to(device);

  LambdaMaxTiming out;
  out.setup = setup.name;
  std::vector<double> ms;
  for (int i = 0; i < options.warmup + options.steps; ++i) {
    synchronize(device);
    const auto t = Clock::now();
    model.step->run(*strategy, images, labels);
    synchronize(device);
    if (i >= options.warmup) ms.push_back(1e3 * seconds_since(t));
  }
  out.step_ms = summarize(ms);

  flatness::ModelLoss loss(model.backbone, model.head, {{images, labels}},
                           /*batch_norm_train=*/false);
  synchronize(device);
  const auto t = Clock::now();
  auto r = flatness::top_eigenvalues(loss.function(), flatness::EigenOptions{});
  synchronize(device);
  out.seconds = seconds_since(t);
  out.iterations = r.iterations.front();
  out.eigenvalue = r.eigenvalues.front();
  out.steps_per_estimate = 1e3 * out.seconds / out.step_ms.median;
  out.product_ms = 1e3 * out.seconds / static_cast<double>(out.iterations);
  return out;
}

double peak_rss_mib() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

}  // namespace flatface
