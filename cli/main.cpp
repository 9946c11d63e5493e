// `flatface`: a table of subcommands, each a short function over the runtime.
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "common.hpp"

namespace {

namespace cli = flatface::cli;

// Every training step frees and re-allocates the same large CPU tensors. With glibc's defaults
// that memory goes back to the kernel and is faulted in again on each step: measured here, page
// faults took ~11% of a step and made step times vary by 2x (bench/RESULTS.md). Keeping blocks up
// to 32 MiB in the heap and not trimming it makes steps 20-35% faster and steady. A user's own
// MALLOC_* settings win.
void keep_freed_memory_for_reuse() {
#if defined(__GLIBC__)
  if (!std::getenv("MALLOC_MMAP_THRESHOLD_")) mallopt(M_MMAP_THRESHOLD, 32 << 20);
  if (!std::getenv("MALLOC_TRIM_THRESHOLD_")) mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

std::chrono::steady_clock::time_point g_program_start;

// One subcommand: its name ("data pack" for a subcommand of the group `data`), its help, the
// function that adds its options and the one that runs it. A group's row has neither function:
// its rows follow it and one of them must be chosen.
struct Command {
  const char* name;
  const char* help;
  cli::AddOptions add_options;
  cli::RunCommand run;
};

// Every subcommand, in the order `flatface --help` lists them.
const Command kCommands[] = {
    {"plugins", "List the plugins found, as a table", cli::plugins_options, cli::plugins_command},
    {"validate", "Load plugins and construct every run's objects", cli::validate_options,
     cli::validate_command},
    {"plan", "List the runs of an experiment grid (or a Slurm script)", cli::plan_options,
     cli::plan_command},
    {"run", "Train every run of an experiment grid (resumes by default)", cli::run_options,
     cli::run_command},
    {"status", "Where each run of a grid stands: pending, running (where), stale, complete, failed",
     cli::status_options, cli::status_command},
    {"data", "Inspect and convert face data sets", nullptr, nullptr},
    {"data pack",
     "Pack an image folder (root/<identity>/<image>) into insightface train.rec/.idx/property",
     cli::data_pack_options, cli::data_pack_command},
    {"data info",
     "Describe a data set through the dataset plugin that reads it (insightface folder, image "
     "folder, verification .bin, or any format a loaded plugin recognises)",
     cli::data_info_options, cli::data_info_command},
    {"data pairs",
     "Write an insightface verification .bin from a folder, an LFW pairs list or any "
     "verification set a dataset plugin reads",
     cli::data_pairs_options, cli::data_pairs_command},
    {"eval", "Verification accuracy (10-fold) of a checkpoint or weights", cli::eval_options,
     cli::eval_command},
    {"embed", "Write a verification set's embeddings to HDF5", cli::embed_options,
     cli::embed_command},
    {"analyze",
     "Flatness of trained runs: Hessian eigenvalues and trace, sharpness, loss landscapes",
     cli::analyze_options, cli::analyze_command},
    {"report", "Tables (mean ± std over seeds) and figures from the HDF5 results of runs",
     cli::report_options, cli::report_command},
    {"bench", "Time the training step of each setup, the loader and evaluation", cli::bench_options,
     cli::bench_command},
    {"export", "Write a checkpoint's backbone as a PyTorch state dict", cli::export_options,
     cli::export_command},
};

// The subcommand of `row`, under its group's when its name has one.
CLI::App* add_subcommand(CLI::App& app, const Command& row) {
  const std::string name = row.name;
  const auto space = name.find(' ');
  CLI::App* parent = space == std::string::npos ? &app : app.get_subcommand(name.substr(0, space));
  CLI::App* cmd = parent->add_subcommand(name.substr(space + 1), row.help);
  if (row.add_options)
    row.add_options(*cmd);
  else
    cmd->require_subcommand(1);
  return cmd;
}

}  // namespace

std::chrono::steady_clock::time_point flatface::cli::program_start() {
  return g_program_start;
}

int main(int argc, char** argv) {
  g_program_start = std::chrono::steady_clock::now();
  using namespace flatface;
  keep_freed_memory_for_reuse();
  CLI::App app{"flatface: margin-based face recognition with sharpness-aware training"};
  app.require_subcommand(0, 1);
  // Global options may also follow the subcommand: `flatface validate x.toml --plugin-path p`.
  app.fallthrough();
  cli::Globals globals;
  app.add_option("--plugin-path", globals.plugin_paths, "Extra plugin folder (repeatable)");
  app.add_option("--log-level", globals.log_level, "trace|debug|info|warn|error|off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_option("--threads", globals.threads,
                 "Compute threads (default: the experiment's, else all cores)")
      ->check(CLI::NonNegativeNumber);
  bool version = false;
  app.add_flag("--version", version, "Print flatface, libtorch and CUDA versions");

  std::vector<CLI::App*> subcommands;
  for (const auto& row : kCommands) subcommands.push_back(add_subcommand(app, row));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  spdlog::set_level(spdlog::level::from_str(globals.log_level));
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
  try {
    if (version) {
      std::cout << cli::version_text() << '\n';
      return 0;
    }
    for (std::size_t i = 0; i < std::size(kCommands); ++i)
      if (kCommands[i].run && subcommands[i]->parsed()) return kCommands[i].run(globals);
    std::cout << app.help() << '\n';
    return 2;
  } catch (const ConfigError& e) {
    std::cerr << "error: " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << '\n';
    return 1;
  }
}
