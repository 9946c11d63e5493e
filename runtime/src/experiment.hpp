// The experiment file: TOML -> typed Experiment -> grid of RunSpecs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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
  bool flip = true;                   // random horizontal flip of training images
};

struct Setup {
  std::string name;
  PluginRef head;
  PluginRef perturbation;
  std::vector<double> rhos;  // empty: the strategy takes no rho
  std::string bn_second_pass = "freeze";  // freeze | update
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
  TrainSettings train;
  std::vector<Setup> setups;
  std::string resolved_toml;  // the file after --set overrides
};

struct RunSpec {
  std::string id;        // short stable hash of `canonical`
  std::size_t setup = 0; // index into Experiment::setups
  std::int64_t seed = 0;
  std::optional<double> rho;
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

// seeds x setups x each setup's rho list.
std::vector<RunSpec> expand_grid(const Experiment& e);

// "0.1": rho as labels and the result file's `rho` attribute write it (shortest exact form).
std::string format_rho(double rho);

// Options handed to the perturbation plugin for one run: the setup's table with rho as a number.
Options perturbation_options(const Experiment& e, const RunSpec& run);

}  // namespace flatface
