// flatface run --workers N: the parent (runtime/src/grid/grid_workers.hpp) starts N `flatface run`
// processes of the same grid and reads their events; this file shows one line per worker, then
// one summary and the report.
#include "run_workers.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "grid/grid_workers.hpp"
#include "report_tables.hpp"
#include "training/trainer.hpp"

namespace flatface::cli {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::atomic<int> g_interrupts{0};

extern "C" void on_parent_interrupt(int) {
  g_interrupts.fetch_add(1);
}

// What the display shows of a worker.
struct WorkerView {
  int index = 0;
  std::string device;
  bool training = false;  // else `state` says what it does
  std::string state = "starting";
  std::string tag, label, run_id;  // the run in training
  RunProgress progress;
};

// "w1 cpu     [3/21] ArcFace seed=1: epoch 2/8 step 10/24, 820 img/s, ETA 1m10s"
std::string describe(const WorkerView& w) {
  char head[64];
  std::snprintf(head, sizeof head, "w%-2d %-7s ", w.index, w.device.c_str());
  if (!w.training) return head + w.state;
  const RunProgress& p = w.progress;
  if (p.epoch == 0) return head + w.tag + " " + w.label + ": starting";
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s %s: epoch %lld/%lld step %lld/%lld, %.0f img/s, ETA %s",
                w.tag.c_str(), w.label.c_str(), static_cast<long long>(p.epoch),
                static_cast<long long>(p.epochs), static_cast<long long>(p.step),
                static_cast<long long>(p.steps), p.images_per_second,
                format_duration(p.eta_seconds).c_str());
  return std::string(head) + buf;
}

// The lines below the log: one per worker, redrawn in place on a terminal.
class Display : public WorkerWatcher {
 public:
  explicit Display(const std::vector<WorkerProcess>& workers)
      : terminal_(::isatty(STDOUT_FILENO) == 1) {
    for (const auto& w : workers) {
      WorkerView v;
      v.index = w.index;
      v.device = w.device;
      views_.push_back(v);
    }
  }

  void event(const WorkerProcess& w, const WorkerEvent& e) override {
    WorkerView& v = views_[static_cast<std::size_t>(w.index - 1)];
    const std::string who = "w" + std::to_string(w.index) + ": ";
    switch (e.kind) {
      case WorkerEventKind::start:
        v.training = true;
        v.tag = e.run.tag();
        v.run_id = e.run.id;
        v.label = e.run.label;
        v.progress = RunProgress{};
        changed(v);
        break;
      case WorkerEventKind::step: {
        if (e.run.id != v.run_id) break;
        const bool new_epoch = e.progress.epoch != v.progress.epoch;
        v.progress = e.progress;
        if (new_epoch) changed(v);
        break;
      }
      case WorkerEventKind::end:
        v.training = false;
        v.state = "looking for a run";
        if (e.status != RunStatus::skipped) log(who + e.text);
        break;
      case WorkerEventKind::waiting:
        v.training = false;
        v.state = "waiting for runs held by other processes";
        log(who + e.text);
        break;
      case WorkerEventKind::note:
        log(who + e.text);
        break;
      case WorkerEventKind::summary:
        break;
    }
  }

  void exited(const WorkerProcess& w) override {
    WorkerView& v = views_[static_cast<std::size_t>(w.index - 1)];
    v.training = false;
    if (w.signal != 0) {
      v.state = "killed by signal " + std::to_string(w.signal);
      log("w" + std::to_string(w.index) + " (pid " + std::to_string(w.pid) +
          ") was killed by signal " + std::to_string(w.signal) +
          "; another worker or the next `flatface run` finishes its run");
    } else {
      v.state = w.exit_code == 0 ? "finished" : "exited with code " + std::to_string(w.exit_code);
    }
  }

  void interrupted(int presses) override {
    log(presses == 1 ? "interrupted: every worker saves its run and stops (Ctrl-C again to quit "
                       "at once)"
                     : "quitting at once");
  }

  void idle() override {
    if (!terminal_ || Clock::now() - last_ < std::chrono::milliseconds(250)) return;
    clear();
    draw();
  }

  void finish() { clear(); }

 private:
  // A line that stays (a finished run, a takeover): above the workers' lines.
  void log(const std::string& line) {
    clear();
    spdlog::info("{}", line);
    std::fflush(stderr);
    draw();
  }
  // Without a terminal, a worker's line is printed when it starts a run or an epoch.
  void changed(const WorkerView& v) {
    if (!terminal_) spdlog::info("{}", describe(v));
  }
  void clear() {
    if (!terminal_ || drawn_ == 0) return;
    std::fprintf(stdout, "\x1b[%dF\x1b[J", drawn_);
    std::fflush(stdout);
    drawn_ = 0;
  }
  void draw() {
    if (!terminal_) return;
    for (const auto& v : views_) std::fprintf(stdout, "%s\n", describe(v).c_str());
    std::fflush(stdout);
    drawn_ = static_cast<int>(views_.size());
    last_ = Clock::now();
  }

  std::vector<WorkerView> views_;
  bool terminal_;
  int drawn_ = 0;
  Clock::time_point last_{};
};

// A worker's command line: this grid, told its device and threads, events to fd 3.
std::vector<std::string> worker_argv(const Globals& g, const RunArgs& args,
                                     const std::string& device, int threads) {
  std::vector<std::string> a{"flatface", "run", args.experiment.file};
  for (const auto& o : args.experiment.overrides) a.insert(a.end(), {"--set", o});
  for (const auto& o : args.only) a.insert(a.end(), {"--only", o});
  if (args.retry_failed) a.push_back("--retry-failed");
  if (args.stop_after_steps >= 0)
    a.insert(a.end(), {"--stop-after-steps", std::to_string(args.stop_after_steps)});
  char stale[32];
  std::snprintf(stale, sizeof stale, "%.17g", args.stale_after);
  a.insert(a.end(), {"--stale-after", stale, "--no-report", "--device", device, "--threads",
                     std::to_string(threads), "--progress-fd", "3", "--log-level", g.log_level});
  if (args.nproc > 1) a.insert(a.end(), {"--nproc", std::to_string(args.nproc)});
  for (const auto& p : g.plugin_paths) a.insert(a.end(), {"--plugin-path", p});
  return a;
}

std::string last_lines(const std::string& file, std::size_t n) {
  std::ifstream in(file);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::string out;
  for (std::size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i)
    out += "  " + lines[i] + "\n";
  return out;
}

}  // namespace

int run_workers(const Globals& g, const RunArgs& args, const Experiment& e,
                const std::vector<RunSpec>& runs) {
  int n = args.workers > 0 ? args.workers : static_cast<int>(args.devices.size());
  if (static_cast<std::size_t>(n) > runs.size()) {
    spdlog::info("{} runs selected: starting {} workers, not {}", runs.size(), runs.size(), n);
    n = static_cast<int>(runs.size());
  }
  const int nproc = std::max(1, args.nproc);
  std::vector<std::string> requested = args.devices;
  if (requested.empty() && !args.device.empty()) requested.push_back(args.device);
  const std::vector<std::string> devices = worker_devices(requested, e.device, n, nproc);
  int threads = g.threads > 0 ? g.threads : static_cast<int>(e.threads);
  if (threads <= 0) threads = std::max(1, available_cores() / (n * nproc));
  const ResultCounts before = count_results(e, runs);
  const fs::path logs = fs::path(e.output) / "logs";
  fs::create_directories(logs);
  std::string device_list;
  for (const auto& d : devices) device_list += (device_list.empty() ? "" : ",") + d;
  spdlog::info(
      "{}: {} runs ({} complete, {} failed) on {} workers ({}; {} threads each) -> {}; "
      "worker logs in {}",
      e.name, runs.size(), before.complete, before.failed, n, device_list, threads, e.output,
      logs.string());

  std::signal(SIGINT, on_parent_interrupt);
  std::signal(SIGTERM, on_parent_interrupt);
  std::vector<WorkerProcess> workers = start_workers(
      devices, logs.string(),
      [&](const std::string& device) { return worker_argv(g, args, device, threads); });
  Display display(workers);
  const int interrupts = supervise_workers(workers, g_interrupts, display);
  display.finish();

  const WorkersOutcome outcome = workers_outcome(workers, interrupts);
  if (const WorkerProcess* w = outcome.configuration_error) {
    std::cerr << "error: worker " << w->index << " stopped on a usage or configuration error ("
              << w->log << "):\n"
              << last_lines(w->log, 5);
    return 2;
  }
  // Counted from the files: every worker sees (and counts) a failed run.
  const ResultCounts after = count_results(e, runs);
  const GridSummary& t = outcome.totals;
  spdlog::info(
      "{}: {} trained by {} workers, {} already complete, {} failed, {} unfinished; "
      "results in {}",
      e.name, t.trained, n, before.complete, after.failed,
      runs.size() - after.complete - after.failed, e.output);
  const double wall = std::chrono::duration<double>(Clock::now() - program_start()).count();
  const double worker_time = wall * n;
  const double other = worker_time - t.train_seconds - t.eval_seconds;
  spdlog::info(
      "{}: wall {:.1f}s x {} workers = training steps {:.1f}s + evaluation {:.1f}s + "
      "other {:.1f}s ({:.1f}% overhead, waiting included; saving results and checkpoints "
      "{:.1f}s, claiming runs {:.2f}s)",
      e.name, wall, n, t.train_seconds, t.eval_seconds, other,
      worker_time > 0 ? 100 * other / worker_time : 0, t.save_seconds, t.claim_seconds);
  if (outcome.interrupted) {
    std::cerr << "\ninterrupted: every run is complete or saved at its last step. Resume with:\n"
              << "  flatface run " << e.file;
    for (const auto& o : args.experiment.overrides) std::cerr << " --set '" << o << "'";
    std::cerr << " --workers " << n << '\n';
    return 130;
  }
  if (!args.no_report) {
    using namespace flatface::reports;
    auto agg = aggregate_runs(load_results({e.output}), Selection::final_epoch);
    std::cout << '\n' << render_report(agg, Format::markdown) << std::flush;
  }
  return workers_exit_code(outcome, after, runs.size());
}

}  // namespace flatface::cli
