// Shared pieces of the `flatface` subcommands: global flags and helpers to open an experiment.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <functional>
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

// Each subcommand registers itself; the callback runs after parsing and returns the exit code.
using Command = std::function<int()>;
using AddCommands = void (*)(CLI::App& app, Globals& g, Command& chosen);

// The subcommands of each cli/*_commands.cpp; main.cpp lists them all in one table.
void add_info_commands(CLI::App& app, Globals& g, Command& chosen);     // plugins, validate
void add_plan_commands(CLI::App& app, Globals& g, Command& chosen);     // plan
void add_run_commands(CLI::App& app, Globals& g, Command& chosen);      // run
void add_status_commands(CLI::App& app, Globals& g, Command& chosen);   // status
void add_data_commands(CLI::App& app, Globals& g, Command& chosen);     // data info|validate|...
void add_pairs_command(CLI::App& app, Globals& g, Command& chosen);     // data pairs
void add_eval_commands(CLI::App& app, Globals& g, Command& chosen);     // eval, embed
void add_analyze_commands(CLI::App& app, Globals& g, Command& chosen);  // analyze
void add_report_commands(CLI::App& app, Globals& g, Command& chosen);   // report
void add_bench_commands(CLI::App& app, Globals& g, Command& chosen);    // bench
void add_export_command(CLI::App& app, Globals& g, Command& chosen);    // export

// When main() began (for the wall time a command reports).
std::chrono::steady_clock::time_point program_start();

}  // namespace flatface::cli

namespace flatface::cli {
std::string version_text();
}
