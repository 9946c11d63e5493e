// bench/: `flatface bench`'s measurements. Uses training/ (the step as a run takes it), data/,
// evaluation/ and flatness/ (the cost of one λ_max estimate); nothing uses it but the CLI.
//
// Measurements behind `flatface bench`: the training step of each setup (interleaved round-robin
// so that machine noise hits every setup alike), the loader and evaluation.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "experiment/experiment.hpp"
#include "flatface/backbone.hpp"
#include "flatface/dataset.hpp"
#include "plugin_host/registry.hpp"

namespace flatface {

// Order statistics of a sample; percentiles interpolate linearly between order statistics
// (numpy's default), so the median of an even count is the mean of the middle two.
struct TimingSummary {
  std::size_t n = 0;
  double median = 0, p10 = 0, p90 = 0, min = 0, max = 0;
  double mean = 0;
};
TimingSummary summarize(std::vector<double> samples);

// The cost per step of a strategy that makes a second pass on some steps only, robust to the
// outliers a shared machine adds: each kind of step's median, weighted by its share of the steps,
// f median(two-pass steps) + (1 − f) median(one-pass steps). For steps of one kind: their median.
double amortised_ms(const std::vector<double>& samples_ms, const std::vector<bool>& second_pass);
double percentile(std::vector<double> samples, double q);  // q in [0, 100]

struct StepBenchOptions {
  std::int64_t classes = 0;  // 0: the training set's number of identities
  int steps = 20;            // timed rounds
  int warmup = 3;            // untimed rounds first
  std::int64_t seed = 0;
  std::vector<std::string> setups;  // names to measure; empty: every setup
};

struct StepTiming {
  std::size_t setup_index = 0;  // into Experiment::setups
  std::optional<double> rho;    // the setup's first rho, the one measured
  std::vector<SweptValue> swept;  // the setup's first value of each swept option, as measured
  std::string setup;
  std::string head;          // plugin names
  std::string perturbation;
  bool two_pass = false;
  std::vector<double> samples_ms;
  std::vector<bool> samples_second_pass;  // whether each timed step made a second pass
  TimingSummary ms;
  double amortised_ms = 0;                // see amortised_ms()
  double images_per_second = 0;           // batch / median
  std::optional<double> ratio_to_plain;   // median / median of the one-pass setup with this head
  std::optional<double> amortised_ratio;  // amortised_ms / that setup's
  double second_pass_fraction = 0;        // timed steps that made a second pass
  double loss_first = 0, loss_last = 0;   // L_margin(w) of the first and last timed step
};

struct StepBench {
  std::string device;
  std::int64_t batch_size = 0;
  std::int64_t input_size = 0;
  std::int64_t classes = 0;
  std::int64_t parameters = 0;  // trainable parameters of one model (backbone + class weights)
  std::vector<StepTiming> steps;
};

// Builds one backbone + head + optimizer per setup (the setup's first rho) on the experiment's
// device and times `steps` rounds of one step each, after `warmup` rounds, on one fixed random
// batch of the experiment's batch size. The strategies see a run of warmup + steps steps, so
// schedules (LookSAM's period, AE-SAM's threshold) play out over it.
StepBench bench_steps(const Experiment& e, const Registry& reg, const StepBenchOptions& options);

struct LoaderTiming {
  std::string dataset;
  int threads = 0;
  std::int64_t images = 0;
  double seconds = 0;
  double images_per_second = 0;
};

// Decoded, resized, flipped and normalised batches per second with `threads` workers, over
// `batches` batches (after one warm-up batch), cycling epochs as needed.
LoaderTiming bench_loader(std::shared_ptr<const TrainSet> data, const std::string& name,
                          std::int64_t batch_size, std::int64_t input_size, int threads,
                          std::int64_t batches);

struct EvalTiming {
  std::string benchmark;
  std::size_t pairs = 0;
  TimingSummary seconds;
  double pairs_per_second = 0;  // pairs / median
};

// The whole verification protocol (flip-sum embeddings + 10 folds), `repeats` times after one
// warm-up.
EvalTiming bench_eval(Backbone& backbone, const VerificationSet& set, const std::string& name,
                      std::int64_t batch_size, const std::string& device, int repeats);

struct LambdaMaxTiming {
  std::string setup;              // whose model (backbone + head) was measured
  std::int64_t iterations = 0;    // Hessian-vector products the estimate took
  double eigenvalue = 0;          // λ_max found
  double seconds = 0;             // the whole estimate
  TimingSummary step_ms;          // plain training steps of the same model and batch
  double steps_per_estimate = 0;  // 1e3 seconds / median step ms: the cost in training steps
  double product_ms = 0;          // per Hessian-vector product
};

// The cost of one λ_max estimate (power iteration with PyHessian's tolerance 1e-3 and cap 100,
// BN in eval mode, one batch of the experiment's batch size) in plain training steps of the same
// model on the same batch: `steps` plain steps after `warmup`, then the estimate, once. The model
// is the first setup with a one-pass strategy (else the first setup) at its initial weights moved
// by those steps.
LambdaMaxTiming bench_lambda_max(const Experiment& e, const Registry& reg,
                                 const StepBenchOptions& options);

// Peak resident set size of this process so far, in MiB.
double peak_rss_mib();

}  // namespace flatface
