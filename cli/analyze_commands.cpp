// flatface analyze CKPT… | RESULTS_DIR… [--pair A B]: the flatness of trained runs (Hessian
// spectrum, trace, sharpness, landscapes) into their result files
// (runtime/src/flatness/analysis.hpp).
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "common.hpp"
#include "flatness/analysis.hpp"

namespace flatface::cli {
namespace {

struct AnalyzeArgs {
  std::vector<std::string> paths;
  std::string settings;  // inline TOML table
  bool force = false;
  std::string device;
  std::vector<std::string> pair;
  std::int64_t points = 11;
  std::vector<double> range{0.0, 1.0};
  bool accuracy = false;
};
AnalyzeArgs analyze_args;

// One updating line on a terminal; elsewhere a log line as each stage starts.
AnalysisCallback progress_display(const std::string& tag) {
  const bool live = ::isatty(STDOUT_FILENO) == 1;
  auto stage = std::make_shared<std::string>();
  return [live, tag, stage](const AnalysisProgress& p) {
    if (live) {
      std::fprintf(stdout, "\r%s %s %lld/%lld      ", tag.c_str(), p.stage.c_str(),
                   static_cast<long long>(p.done), static_cast<long long>(p.total));
      std::fflush(stdout);
    } else if (*stage != p.stage) {
      spdlog::info("{} {} (at most {})", tag, p.stage, p.total);
    }
    *stage = p.stage;
  };
}

void end_live_line() {
  if (::isatty(STDOUT_FILENO) == 1) std::fprintf(stdout, "\n");
}

std::optional<AnalysisSettings> given_settings(const AnalyzeArgs& a) {
  if (a.settings.empty()) return std::nullopt;
  return parse_analysis_settings(parse_options_table(a.settings, "--settings"));
}

// Checkpoint files as given; a folder: every complete run in it.
std::vector<RunFiles> targets(const std::vector<std::string>& paths) {
  std::vector<RunFiles> out;
  for (const auto& p : paths) {
    if (std::filesystem::is_directory(p)) {
      std::vector<std::string> left_out;
      auto runs = complete_runs_in(p, &left_out);
      for (const auto& line : left_out) spdlog::warn("{}", line);
      out.insert(out.end(), runs.begin(), runs.end());
    } else {
      out.push_back(run_files_of_checkpoint(p));
    }
  }
  return out;
}

int analyze(const Globals& g, const AnalyzeArgs& a) {
  const auto settings = given_settings(a);  // a bad table fails before any work
  auto registry = open_registry(g);
  apply_threads(g);
  if (!a.pair.empty()) {
    if (a.pair.size() != 2) throw ConfigError("--pair takes two checkpoints: A B");
    if (a.range.size() != 2 || !(a.range[0] < a.range[1]))
      throw ConfigError("--range takes FROM,TO with FROM < TO (e.g. -0.25,1.25)");
    LineOptions o;
    o.points = a.points;
    o.from = a.range[0];
    o.to = a.range[1];
    o.accuracy = a.accuracy;
    o.device = a.device;
    o.settings = settings;
    o.progress = progress_display("line");
    const RunFiles from = run_files_of_checkpoint(a.pair[0]),
                   to = run_files_of_checkpoint(a.pair[1]);
    analyze_line(*registry, from, to, o);
    end_live_line();
    std::cout << from.result << ": line to " << to.checkpoint << " written\n";
    return 0;
  }
  if (a.paths.empty()) throw ConfigError("give checkpoints or results folders to analyze");
  const auto runs = targets(a.paths);
  int analysed = 0, skipped = 0;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const std::string tag = "[" + std::to_string(i + 1) + "/" + std::to_string(runs.size()) + "] " +
                            std::filesystem::path(runs[i].result).stem().string();
    AnalyzeOptions o;
    o.settings = settings;
    o.force = a.force;
    o.device = a.device;
    o.progress = progress_display(tag);
    const bool done = analyze_run(*registry, runs[i], o);
    end_live_line();
    ++(done ? analysed : skipped);
    spdlog::info("{}: {}", tag,
                 done ? "analysed -> " + runs[i].result
                      : "already analysed with these settings, skipped (--force to redo)");
  }
  std::cout << analysed << " analysed, " << skipped << " skipped\n";
  return 0;
}

}  // namespace

void analyze_options(CLI::App& cmd) {
  cmd.add_option("paths", analyze_args.paths,
                 "Checkpoints (results/x/checkpoints/ID.ckpt) or results folders (every complete "
                 "run)");
  cmd.add_option("--settings", analyze_args.settings,
                 "Analysis settings as an inline TOML table, e.g. '{ top_k = 3, batches = 2 }' "
                 "(default: the experiment's [analysis], else the defaults)");
  cmd.add_flag("--force", analyze_args.force,
               "Analyse runs already analysed with the same settings");
  cmd.add_option("--device", analyze_args.device,
                 "cpu | cuda | cuda:N | auto (default: the experiment's)");
  cmd.add_option("--pair", analyze_args.pair,
                 "Two checkpoints A B: the loss on the straight line from A to B, written to A's "
                 "file")
      ->expected(2);
  cmd.add_option("--points", analyze_args.points, "Points on the line (--pair)")
      ->check(CLI::Range(std::int64_t{2}, std::int64_t{10000}));
  cmd.add_option("--range", analyze_args.range,
                 "t range of the line, FROM,TO (--pair; default 0,1)")
      ->delimiter(',')
      ->expected(2);
  cmd.add_flag("--accuracy", analyze_args.accuracy,
               "Also verification accuracy along the line (--pair; A's [data] eval sets)");
}

int analyze_command(const Globals& g) {
  return analyze(g, analyze_args);
}

}  // namespace flatface::cli
