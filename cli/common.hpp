// Shared pieces of the `flatface` subcommands: global flags and helpers to open an experiment.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "experiment/experiment.hpp"
#include "plugin_host/registry.hpp"

namespace flatface::cli {

struct Globals {
  std::vector<std::string> plugin_paths;  // --plugin-path (repeatable)
  std::string log_level = "info";
  int threads = 0;  // --threads; 0: the experiment's setting, else all cores
};

// An experiment file plus its --set overrides, as taken by run/validate/plan.
struct ExperimentArgs {
  std::string file;
  std::vector<std::string> overrides;
  void add_to(CLI::App& cmd);
  Experiment load() const { return load_experiment(file, overrides); }
};

std::unique_ptr<Registry> open_registry(const Globals& g, const Experiment* e = nullptr);
// Sets torch's intra-op thread count: --threads, else the experiment's, else all cores.
int apply_threads(const Globals& g, const Experiment* e = nullptr);
// The cores this process may run on (its CPU affinity: what Slurm or taskset gave it).
int available_cores();
// A CLI11 check: a positive, finite number of seconds (--stale-after, --interval).
CLI::Validator positive_seconds();
// The runs as `plan` lists them (one line each: id, setup, seed, rho, swept values); also
// `run --dry-run`.
void print_plan_text(const Experiment& e, const std::vector<RunSpec>& runs);
// A number of the JSON that plan, status and bench write, to `digits` significant digits (as
// these files have always been written); NaN and infinities are null.
nlohmann::ordered_json json_number(double v, int digits);

// A subcommand, as a row of the command table (main.cpp) names it: a function that adds its
// options (bound to the arguments its file keeps) and one that runs it once they are parsed,
// returning the exit code. Each pair lives in the cli/*_commands.cpp of its command.
using AddOptions = void (*)(CLI::App& cmd);
using RunCommand = int (*)(const Globals& g);

void plugins_options(CLI::App& cmd);
int plugins_command(const Globals& g);
void validate_options(CLI::App& cmd);
int validate_command(const Globals& g);
void plan_options(CLI::App& cmd);
int plan_command(const Globals& g);
void run_options(CLI::App& cmd);
int run_command(const Globals& g);
void status_options(CLI::App& cmd);
int status_command(const Globals& g);
void data_pack_options(CLI::App& cmd);
int data_pack_command(const Globals& g);
void data_info_options(CLI::App& cmd);
int data_info_command(const Globals& g);
void data_pairs_options(CLI::App& cmd);
int data_pairs_command(const Globals& g);
void eval_options(CLI::App& cmd);
int eval_command(const Globals& g);
void embed_options(CLI::App& cmd);
int embed_command(const Globals& g);
void analyze_options(CLI::App& cmd);
int analyze_command(const Globals& g);
void report_options(CLI::App& cmd);
int report_command(const Globals& g);
void bench_options(CLI::App& cmd);
int bench_command(const Globals& g);
void export_options(CLI::App& cmd);
int export_command(const Globals& g);

// When main() began (for the wall time a command reports).
std::chrono::steady_clock::time_point program_start();

}  // namespace flatface::cli

namespace flatface::cli {
std::string version_text();
}
