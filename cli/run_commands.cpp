// flatface run: every cell of seeds x setups x rho, one after the other, resumable.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>

#include "common.hpp"
#include "report_tables.hpp"
#include "trainer.hpp"

namespace flatface::cli {

namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_interrupt(int) {
  if (g_stop.exchange(true)) std::_Exit(130);  // a second Ctrl-C quits at once
}

struct RunArgs {
  ExperimentArgs experiment;
  std::vector<std::string> only;
  bool dry_run = false;
  bool retry_failed = false;
  bool no_report = false;
  std::int64_t stop_after_steps = -1;
};

// --only setup=NAME | seed=N | rho=X; several filters must all match.
bool selected(const Experiment& e, const RunSpec& r, const std::vector<std::string>& only) {
  for (const auto& f : only) {
    auto eq = f.find('=');
    if (eq == std::string::npos) throw ConfigError("--only " + f + ": expected KEY=VALUE");
    std::string key = f.substr(0, eq), value = f.substr(eq + 1);
    if (key == "setup") {
      if (e.setups[r.setup].name != value) return false;
    } else if (key == "seed") {
      if (std::to_string(r.seed) != value) return false;
    } else if (key == "rho") {
      if (!r.rho || std::abs(*r.rho - std::stod(value)) > 1e-12) return false;
    } else if (key == "id") {
      if (r.id != value) return false;
    } else {
      throw ConfigError("--only " + f + ": unknown key '" + key + "' (known: setup, seed, rho, id)");
    }
  }
  return true;
}

int run(const Globals& g, const RunArgs& args) {
  Experiment e = args.experiment.load();
  std::vector<RunSpec> runs;
  for (const auto& r : expand_grid(e))
    if (selected(e, r, args.only)) runs.push_back(r);
  if (args.dry_run) {
    std::cout << "# " << e.name << ": " << runs.size() << " runs -> " << e.output << '\n';
    for (const auto& r : runs)
      std::cout << r.id << "  " << e.setups[r.setup].name << "  seed=" << r.seed
                << "  rho=" << (r.rho ? format_rho(*r.rho) : "-") << '\n';
    return 0;
  }
  if (runs.empty()) throw ConfigError("--only matches no run of " + e.file);
  int threads = apply_threads(g, &e);
  auto registry = open_registry(g, &e);
  GridResources shared;
  shared.registry = registry.get();

  std::signal(SIGINT, on_interrupt);
  spdlog::info("{}: {} runs on {} ({} threads) -> {}", e.name, runs.size(), resolve_device(e.device),
               threads, e.output);
  int failed = 0, done = 0, skipped = 0;
  double train_seconds = 0, eval_seconds = 0, save_seconds = 0;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const auto& r = runs[i];
    TrainerOptions opts;
    opts.run_index = i;
    opts.run_count = runs.size();
    opts.live_progress = ::isatty(STDOUT_FILENO) == 1;
    opts.stop = &g_stop;
    opts.threads = threads;
    opts.retry_failed = args.retry_failed;
    opts.stop_after_steps = args.stop_after_steps;
    RunOutcome out = train_run(e, r, shared, opts);
    train_seconds += out.train_seconds;
    eval_seconds += out.eval_seconds;
    save_seconds += out.save_seconds;
    const auto& s = e.setups[r.setup];
    std::string label = s.name + " seed=" + std::to_string(r.seed) +
                        (r.rho ? " rho=" + format_rho(*r.rho) : "");
    switch (out.status) {
      case RunStatus::skipped:
        ++skipped;
        spdlog::info("[{}/{}] {} ({}): already complete, skipped", i + 1, runs.size(), label, r.id);
        break;
      case RunStatus::failed:
        ++failed;
        spdlog::warn("[{}/{}] {} ({}): FAILED: {}", i + 1, runs.size(), label, r.id, out.reason);
        break;
      case RunStatus::interrupted:
        std::cerr << "\ninterrupted: run " << r.id << " saved at its last step. Resume with:\n  "
                  << "flatface run " << e.file;
        for (const auto& o : args.experiment.overrides) std::cerr << " --set '" << o << "'";
        std::cerr << '\n';
        return 130;
      case RunStatus::complete: {
        ++done;
        const auto& last = out.record.epochs.back();
        std::string bench;
        double sum = 0;
        for (const auto& [name, b] : last.benchmarks) sum += b.accuracy;
        if (!last.benchmarks.empty()) {
          char buf[64];
          std::snprintf(buf, sizeof buf, ", avg benchmark %.2f%%",
                        100 * sum / static_cast<double>(last.benchmarks.size()));
          bench = buf;
        }
        // The amortised step: training time over the steps of this session, and how many of
        // them made a second pass.
        std::string cost;
        if (out.steps > 0) {
          char buf[96];
          std::snprintf(
              buf, sizeof buf, ", %.1f ms/step (second pass on %.0f%% of steps)",
              1e3 * out.train_seconds / static_cast<double>(out.steps),
              100.0 * static_cast<double>(out.second_pass_steps) / static_cast<double>(out.steps));
          cost = buf;
        }
        spdlog::info("[{}/{}] {} ({}): done in {:.0f}s{}, train acc {:.2f}%{}", i + 1, runs.size(),
                     label, r.id, out.total_seconds, cost, last.train_accuracy * 100, bench);
        break;
      }
    }
  }
  spdlog::info("{}: {} trained, {} already complete, {} failed; results in {}", e.name, done,
               skipped, failed, e.output);
  // Where the time went: what is neither a training step nor evaluation (which includes decoding
  // the verification pairs) is the grid's overhead: start-up, plugins, training sets, waiting for
  // the loader, HDF5 files, checkpoints.
  // From main(): loading libtorch before it (~0.75 s with Debian's build) is not included, and a
  // process start time would be wrong for `bash -c "... && flatface run"`, which execs into us.
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - program_start()).count();
  const double other = wall - train_seconds - eval_seconds;
  spdlog::info("{}: wall {:.1f}s = training steps {:.1f}s + evaluation {:.1f}s + other {:.1f}s "
               "({:.1f}% overhead; saving results and checkpoints {:.1f}s)",
               e.name, wall, train_seconds, eval_seconds, other, wall > 0 ? 100 * other / wall : 0,
               save_seconds);
  if (!args.no_report) {
    using namespace flatface::reports;
    auto agg = aggregate_runs(load_results({e.output}), Selection::final_epoch);
    std::cout << '\n' << render_report(agg, Format::markdown) << std::flush;
  }
  return failed > 0 ? 1 : 0;
}

void add_run_commands(CLI::App& app, Globals& g, Command& chosen) {
  static RunArgs args;
  auto* cmd = app.add_subcommand("run", "Train every run of an experiment grid (resumes by default)");
  args.experiment.add_to(*cmd);
  cmd->add_option("--only", args.only, "Select runs: setup=NAME, seed=N, rho=X, id=ID (repeatable)");
  cmd->add_flag("--dry-run", args.dry_run, "List the selected runs, like `plan`");
  cmd->add_flag("--retry-failed", args.retry_failed, "Train failed runs again instead of skipping them");
  cmd->add_option("--stop-after-steps", args.stop_after_steps,
                  "Save and stop after N training steps, as Ctrl-C would (resume by running again)");
  cmd->add_flag("--no-report", args.no_report, "Do not print the results table at the end");
  cmd->callback([&g, &chosen] { chosen = [&g] { return run(g, args); }; });
}

const CommandRegistrar run_registrar(20, "run", &add_run_commands);

}  // namespace

}  // namespace flatface::cli
