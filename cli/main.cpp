// `flatface`: a table of subcommands, each a short function over the runtime.
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <iostream>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "common.hpp"

namespace {

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

// Every subcommand, in the order `flatface --help` lists them.
struct CommandGroup {
  const char* name;
  flatface::cli::AddCommands add;
};
const CommandGroup kCommands[] = {
    {"plugins, validate", flatface::cli::add_info_commands},
    {"plan", flatface::cli::add_plan_commands},
    {"run", flatface::cli::add_run_commands},
    {"status", flatface::cli::add_status_commands},
    {"data", flatface::cli::add_data_commands},
    {"data pairs", flatface::cli::add_pairs_command},
    {"eval, embed", flatface::cli::add_eval_commands},
    {"analyze", flatface::cli::add_analyze_commands},
    {"report", flatface::cli::add_report_commands},
    {"bench", flatface::cli::add_bench_commands},
    {"export", flatface::cli::add_export_command},
};

}  // namespace

std::chrono::steady_clock::time_point flatface::cli::program_start() { return g_program_start; }

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
  app.add_option("--threads", globals.threads, "Compute threads (default: the experiment's, else all cores)")
      ->check(CLI::NonNegativeNumber);
  bool version = false;
  app.add_flag("--version", version, "Print flatface, libtorch and CUDA versions");

  cli::Command chosen;
  for (const auto& c : kCommands) c.add(app, globals, chosen);

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
    if (!chosen) {
      std::cout << app.help() << '\n';
      return 2;
    }
    return chosen();
  } catch (const ConfigError& e) {
    std::cerr << "error: " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << '\n';
    return 1;
  }
}
