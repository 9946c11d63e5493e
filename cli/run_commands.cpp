// flatface run: every cell of seeds x setups x rho, resumable. Each run is claimed in the output
// folder before it is trained, so any number of `flatface run` processes (on this machine or on
// others that share the folder) work through one grid together, none training a run twice. The
// grid runner (runtime/src/grid) decides; this file reads the arguments and shows what happens.
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "common.hpp"
#include "distributed/c10d_communicator.hpp"
#include "distributed/launch_env.hpp"
#include "distributed/local_ranks.hpp"
#include "grid/grid_runner.hpp"
#include "grid/worker_events.hpp"
#include "report_tables.hpp"
#include "run_display.hpp"
#include "run_workers.hpp"
#include "training/trainer.hpp"

namespace flatface::cli {

namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_interrupt(int) {
  if (g_stop.exchange(true)) std::_Exit(130);  // a second Ctrl-C quits at once
}

void print_resume_hint(const Experiment& e, const RunArgs& args) {
  std::cerr << "  flatface run " << e.file;
  for (const auto& o : args.experiment.overrides) std::cerr << " --set '" << o << "'";
  std::cerr << '\n';
}

// Data-parallel ranks (torchrun, srun, --nproc): one process per device; rank 0 alone writes.
std::unique_ptr<distributed::C10dCommunicator> join_ranks(Experiment& e, const RunArgs& args,
                                                      const distributed::LaunchEnv& launch) {
  e.device = distributed::rank_device(resolve_device(e.device), launch);
  if (launch.rank != 0) spdlog::set_level(spdlog::level::warn);
  const auto timeout =
      args.dist_timeout > 0
          ? std::chrono::milliseconds(static_cast<std::int64_t>(1000 * args.dist_timeout))
          : std::chrono::milliseconds(distributed::kDefaultCollectiveTimeout);
  auto ranks = std::make_unique<distributed::C10dCommunicator>(launch, c10::Device(e.device), timeout);
  spdlog::info("{}: rank {} of {} ({}), collective timeout {:.0f} s", e.name, launch.rank,
               launch.world_size, launch.source, timeout.count() / 1000.0);
  return ranks;
}

int run(const Globals& g, const RunArgs& args) {
  const auto launch = distributed::launch_from_environment();
  // --nproc alone: this process starts the ranks; with --workers, each worker starts its own.
  const bool grid_workers = args.workers > 1 || args.devices.size() > 1;
  if (args.nproc > 1 && !launch && !grid_workers)
    return distributed::run_local_ranks("/proc/self/exe",
                                        distributed::own_arguments_without("--nproc"), args.nproc);
  Experiment e = args.experiment.load();
  const std::vector<RunSpec> runs = select_runs(e, expand_grid(e), args.only);
  if (args.dry_run) {
    print_plan_text(e, runs);
    return 0;
  }
  if (runs.empty()) throw ConfigError("--only matches no run of " + e.file);
  if (grid_workers) return run_workers(g, args, e, runs);
  if (!args.devices.empty()) e.device = args.devices.front();
  if (!args.device.empty()) e.device = args.device;
  const std::unique_ptr<distributed::C10dCommunicator> ranks =
      launch ? join_ranks(e, args, *launch) : nullptr;
  const bool leader = !launch || launch->rank == 0;
  const int threads = apply_threads(g, &e);
  auto registry = open_registry(g, &e);
  GridResources shared;
  shared.registry = registry.get();

  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);  // Slurm's time limit: save, then the next task resumes
  if (args.progress_fd >= 0)
    std::signal(SIGPIPE, SIG_IGN);  // a parent that has gone is no reason to die
  spdlog::info("{}: {} runs on {} ({} threads) -> {}", e.name, runs.size(),
               resolve_device(e.device), threads, e.output);
  GridOptions options;
  options.stop = &g_stop;
  options.retry_failed = args.retry_failed;
  options.stop_after_steps = args.stop_after_steps;
  options.stale_after = args.stale_after;
  options.threads = threads;
  if (ranks) options.ranks = ranks.get();
  GridConsole console(e);
  // A grid worker's ranks (--workers with --nproc): rank 0 alone reports to the parent.
  WorkerEventSender events(leader ? args.progress_fd : -1);
  GridRunner grid(e, runs, shared, options, {&console, &events});
  const int code = grid.run();
  if (code == 130 && leader) print_resume_hint(e, args);
  if (code != 130 && !args.no_report && leader) {
    using namespace flatface::reports;
    auto agg = aggregate_runs(load_results({e.output}), Selection::final_epoch);
    std::cout << '\n' << render_report(agg, Format::markdown) << std::flush;
  }
  return code;
}

}  // namespace

namespace {
RunArgs run_args;
}  // namespace

void run_options(CLI::App& cmd) {
  run_args.stale_after = kDefaultStaleAfterSeconds;
  run_args.experiment.add_to(cmd);
  cmd.add_option("--only", run_args.only,
                 "Select runs: setup=NAME, seed=N, rho=X, id=ID, or an option such as head.m=0.3 "
                 "(repeatable; all must match)");
  cmd.add_flag("--dry-run", run_args.dry_run, "List the selected runs, like `plan`");
  cmd.add_flag("--retry-failed", run_args.retry_failed,
               "Train failed runs again instead of skipping them");
  cmd.add_option("--stop-after-steps", run_args.stop_after_steps,
                 "Save and stop after N training steps, as Ctrl-C would (resume by running again)");
  cmd.add_flag("--no-report", run_args.no_report, "Do not print the results table at the end");
  cmd.add_option("--workers", run_args.workers,
                 "Train with N worker processes on this machine, each with its share of the "
                 "threads (--threads: per worker)")
      ->check(CLI::Range(1, 1024));
  cmd.add_option("--devices", run_args.devices,
                 "Devices of the workers, comma-separated (cpu, cuda:0, cuda:1, ...), given out "
                 "in turn; alone, one worker per device")
      ->delimiter(',');
  cmd.add_option("--device", run_args.device, "This process's device instead of the experiment's");
  cmd.add_option("--nproc", run_args.nproc,
                 "Train each run data-parallel on N ranks started on this machine (as torchrun "
                 "--nproc-per-node N would; train.batch_size stays the global batch); with "
                 "--workers, each worker trains on N ranks of its own devices")
      ->check(CLI::Range(1, 1024));
  cmd.add_option("--dist-timeout", run_args.dist_timeout,
                 "Data-parallel runs: seconds a collective waits for the other ranks before the "
                 "run stops naming the lost rank (default 120)")
      ->check(positive_seconds());
  cmd.add_option("--stale-after", run_args.stale_after,
                 "Seconds without a heartbeat after which another process takes a run's claim "
                 "over (default 300; keep it above a minute on NFS)")
      ->check(positive_seconds());
  cmd.add_option("--progress-fd", run_args.progress_fd, "Worker events to this file descriptor")
      ->group("");
}

int run_command(const Globals& g) {
  return run(g, run_args);
}
}  // namespace flatface::cli
