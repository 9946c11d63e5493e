// flatness/: how flat a trained run's minimum is. Hessian-vector products and the spectrum
// (hessian.hpp), worst- and average-case sharpness (sharpness.hpp), loss landscapes
// (landscape.hpp), all over one LossFunction (loss_function.hpp); this file runs them on a run's
// checkpoint and writes the results into its result file. Uses training/ to rebuild the run's
// model, data/ for its batches, experiment/ for the [analysis] settings, results/ to write.
//
// `flatface analyze`: the flatness of trained runs, measured on their training loss L_margin over
// backbone and class weights, and written under /analysis in each run's result file (rewritten
// whole and renamed into place, as every result file is).
//
// Arrays (paths below /analysis; scalars have shape {}):
//   hessian/eigenvalues [k], hessian/iterations [k]      top-k, power iteration
//   trace/mean, trace/standard_error, trace/samples      Hutchinson
//   sharpness/rho, sharpness/loss (L(w)), sharpness/worst_case, sharpness/worst_case_adaptive,
//   sharpness/average_case, sharpness/average_case_standard_error
//   landscape/alpha [n], landscape/loss_1d [n]            filter-normalised direction
//   landscape/alpha_2d [m], landscape/beta_2d [m], landscape/loss_2d [m,m]
//   line/<run id of B>/t [n], .../loss [n], .../accuracy/<benchmark> [n]   (analyze --pair)
// Attributes: /analysis holds every setting (analysis_settings.hpp), `settings` (their canonical
// text), the checkpoint, its epoch, the device and the time taken; line/<id> holds its own.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "experiment/analysis_settings.hpp"
#include "experiment/experiment.hpp"
#include "flatface/backbone.hpp"
#include "flatface/dataset.hpp"
#include "flatface/head.hpp"
#include "plugin_host/registry.hpp"
#include "results/result_store.hpp"

namespace flatface {

// A trained run's two files.
struct RunFiles {
  std::string checkpoint;  // <output>/checkpoints/<run id>.ckpt
  std::string result;      // <output>/<run id>.h5
};

// The result file of a checkpoint: <folder>/<run id>.h5 where the checkpoint is
// <folder>/checkpoints/<name>.ckpt. Throws ConfigError naming the file when either is missing.
RunFiles run_files_of_checkpoint(const std::string& checkpoint);
// Every complete run of a results folder, with its checkpoint; `left_out` gets a line for each
// result file that is not (running, failed, no checkpoint).
std::vector<RunFiles> complete_runs_in(const std::string& folder,
                                       std::vector<std::string>* left_out = nullptr);

// A run rebuilt from its checkpoint: experiment, grid cell, backbone and head with the trained
// weights on `device`, and its training set.
struct AnalysisModel {
  Experiment experiment;
  RunSpec run;
  std::int64_t epoch = 0;
  std::shared_ptr<Backbone> backbone;
  std::shared_ptr<MarginHead> head;
  std::shared_ptr<TrainSet> train_set;
  c10::Device device{c10::kCPU};
};
// device empty: the experiment's. Throws ConfigError/RuntimeError naming the checkpoint.
AnalysisModel load_analysis_model(const Registry& registry, const std::string& checkpoint,
                                  const std::string& device = "");

// Where a long analysis stands: a stage ("eigenvalues", "trace", ...) and its count.
struct AnalysisProgress {
  std::string stage;
  std::int64_t done = 0, total = 0;
};
using AnalysisCallback = std::function<void(const AnalysisProgress&)>;

// The settings a run is analysed with: `given`, else its experiment's [analysis], else defaults.
AnalysisSettings settings_for(const Experiment& e, const std::optional<AnalysisSettings>& given);
// ρ of the sharpness measures for a run: settings.rho, else the run's own, else default_rho.
double analysis_rho(const AnalysisSettings& settings, const RunSpec& run);

// Every measure the settings ask for, on the model's training loss (its weights are left
// exactly as they were).
AnalysisRecord measure_flatness(AnalysisModel& model, const AnalysisSettings& settings,
                                const AnalysisCallback& progress = {});

struct AnalyzeOptions {
  std::optional<AnalysisSettings> settings;  // empty: settings_for() the run's experiment
  bool force = false;                        // analyse again with the same settings
  std::string device;                        // empty: the experiment's
  AnalysisCallback progress;
};

// Analyses one complete run and writes /analysis into its result file (line/ entries stay).
// Returns false when skipped: already analysed with the same settings (and not `force`).
bool analyze_run(const Registry& registry, const RunFiles& files, const AnalyzeOptions& options);

struct LineOptions {
  std::int64_t points = 11;
  double from = 0.0, to = 1.0;  // t range; beyond [0, 1] extrapolates
  bool accuracy = false;        // also verification accuracy at each t
  std::string device;
  std::optional<AnalysisSettings> settings;  // batches, batch size, seed, BN mode
  AnalysisCallback progress;
};

// L((1 − t) w_a + t w_b) over backbone and class weights (BN running statistics interpolated
// alike), on A's training batches with A's head, written to A's file as line/<B's run id>.
void analyze_line(const Registry& registry, const RunFiles& a, const RunFiles& b,
                  const LineOptions& options);

}  // namespace flatface
