// experiment/: the experiment file, from TOML text to the runs a command acts on. It owns the
// parse into a typed Experiment, one function per section (parse.cpp; [train] in train_section,
// [analysis] in analysis_settings, sweeps in sweep), `--set` overrides (overrides), the resolved
// TOML kept with results (resolved_toml), grid expansion of seeds x setups x sweep axes and the
// experiment as one run sees it (grid_expansion), run ids (run_ids), `--only` filters (filters)
// and labels (labels); toml_options turns TOML tables into Options. It may use the plugin SDK's
// Options and toml++, nothing else of the runtime: arrows point down, and every other folder
// (training/, grid/, data/, flatness/, ..., and the CLI) reads an Experiment.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "experiment/analysis_settings.hpp"
#include "flatface/options.hpp"

namespace flatface {

// A `{ plugin = "...", key = value, ... }` table: the plugin's name and its options.
struct PluginRef {
  std::string plugin;
  Options options;
};

struct EvalRef {
  std::string name;
  PluginRef data;
};

struct TrainSettings {
  std::int64_t epochs = 50;
  std::int64_t batch_size = 512;
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  bool decay_bn_and_bias = true;   // false: no weight decay on BN parameters and biases
  std::vector<std::int64_t> milestones{28, 38, 46};
  double gamma = 0.1;
  double warmup_epochs = 0;        // linear warm-up from 0 to lr over this many epochs
  std::int64_t eval_every_steps = 0;  // 0: evaluate after each epoch only
  std::int64_t loader_threads = 0;    // 0: as many as compute threads
  std::string precision = "fp32";     // fp32 | bf16 (CUDA autocast of the backbone)
  std::int64_t log_every_steps = 50;
  bool flip = true;  // random horizontal flip of training images
};

// One option a setup sweeps: each run of the setup takes one value (the grid is the product of a
// setup's axes, times the seeds). `key` is "head.m", "perturbation.rho", "backbone.width" or
// "train.lr"; a swept value replaces the one written in that table.
struct SweepAxis {
  std::string key;
  std::vector<Options::Scalar> values;  // at least one, no two equal
  SourcePos pos;                        // where the key was written
};

struct Setup {
  std::string name;
  PluginRef head;
  PluginRef perturbation;
  // The experiment's sweep, then the setup's own, then `rho = [..]` (a sweep of perturbation.rho).
  std::vector<SweepAxis> sweep;
  std::string bn_second_pass = "freeze";  // freeze | update
  // perturbation.epsilon: in a data-parallel run, ε from the global batch's gradient ("global",
  // the single-process step) or from each rank's own ("local", m-sharpness).
  std::string epsilon = "global";
  SourcePos pos;
};

struct Experiment {
  std::string file;           // the TOML file it came from
  std::string name;
  std::vector<std::int64_t> seeds{0, 1, 2};
  std::string device = "auto";
  std::int64_t threads = 0;   // 0: all cores
  std::string output;         // results folder
  std::vector<std::string> plugin_paths;
  PluginRef train_data;
  std::vector<EvalRef> eval;
  PluginRef backbone;
  // [model] init: a torch.save state dict every run starts from (empty: the plugin's random
  // initialisation). As written; relative paths resolve against the working directory, as data
  // paths do.
  std::string init;
  // [model] init_prefix: only init's entries whose names start with it, the prefix removed
  // (AdaFace's Lightning checkpoints: "model.").
  std::string init_prefix;
  TrainSettings train;
  Options train_options;  // [train] as written: runs that sweep a train key re-read it
  std::vector<Setup> setups;
  // [analysis]: flatness measures taken after each run completes (not part of the run ids).
  std::optional<AnalysisSettings> analysis;
  std::string resolved_toml;  // the file after --set overrides
};

// A swept option's value in one run.
struct SweptValue {
  std::string key;  // as in SweepAxis
  Options::Scalar value;
  SourcePos pos;  // the sweep's position, for messages about the value
};

struct RunSpec {
  std::string id;        // short stable hash of `canonical`
  std::size_t setup = 0; // index into Experiment::setups
  std::int64_t seed = 0;
  std::vector<SweptValue> swept;  // one per axis of the setup's sweep, in its order
  std::optional<double> rho;      // the perturbation's rho, swept or not, when it has one
  std::string canonical; // the resolved spec the id is derived from
};

// Parses and checks the experiment file, applying `overrides` ("a.b.c=<toml value>") first.
// Throws ConfigError with file:line:col on syntax, type and unknown-key errors.
Experiment load_experiment(const std::string& path, const std::vector<std::string>& overrides = {});
Experiment parse_experiment(const std::string& text, const std::string& path,
                            const std::vector<std::string>& overrides = {});

// A plugin reference written as an inline TOML table on the command line, e.g.
// `{ plugin = "image-folder", root = "faces/" }`; `what` names it in messages.
PluginRef parse_plugin_ref(const std::string& inline_table, const std::string& what);

// An inline TOML table of plain values (`{ top_k = 3, batches = 2 }`) as Options; `what` names it
// in messages (e.g. "--settings").
Options parse_options_table(const std::string& inline_table, const std::string& what);

// For each setup, seeds x the product of its sweep axes. Throws ConfigError when two runs would
// share an id.
std::vector<RunSpec> expand_grid(const Experiment& e);

// The experiment as one run sees it: the backbone, [train] and its setup's head and perturbation
// with the run's swept values in place (the other setups are left as written).
Experiment run_experiment(const Experiment& e, const RunSpec& run);

// "0.1": rho as labels and the result file's `rho` attribute write it (shortest exact form).
std::string format_rho(double rho);

// A swept value as labels, --only and result attributes write it: 0.3, true, adaptive.
std::string format_value(const Options::Scalar& value);

// "head.m=0.3 train.lr=0.05": the run's swept values besides rho (which labels show apart).
std::string swept_label(const RunSpec& run);

// "FlatFace-SAM-ArcFace seed=0 rho=0.05 head.m=0.3": the setup, the seed, rho when the run has
// one, then every other swept value.
std::string describe_run(const Experiment& e, const RunSpec& run);

// The runs that pass every `--only` filter: setup=NAME, seed=N, rho=X, id=ID, or an option as
// swept or written, e.g. head.m=0.3 or train.lr=0.05. Throws ConfigError for a malformed filter
// or an option that no run of the grid has.
std::vector<RunSpec> select_runs(const Experiment& e, const std::vector<RunSpec>& runs,
                                 const std::vector<std::string>& only);

// Options handed to the perturbation plugin for one run: the setup's table with the run's swept
// values (rho among them) in place.
Options perturbation_options(const Experiment& e, const RunSpec& run);

}  // namespace flatface
