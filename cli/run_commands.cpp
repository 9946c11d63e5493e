// flatface run: every cell of seeds x setups x rho, resumable. Each run is claimed in the output
// folder before it is trained, so any number of `flatface run` processes (on this machine or on
// others that share the folder) work through one grid together, none training a run twice.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <optional>
#include <thread>

#include "common.hpp"
#include "report_tables.hpp"
#include "run_claim.hpp"
#include "run_workers.hpp"
#include "trainer.hpp"

namespace flatface::cli {

namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_interrupt(int) {
  if (g_stop.exchange(true)) std::_Exit(130);  // a second Ctrl-C quits at once
}

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
      throw ConfigError("--only " + f + ": unknown key '" + key +
                        "' (known: setup, seed, rho, id)");
    }
  }
  return true;
}

std::string run_label(const Experiment& e, const RunSpec& r) {
  return e.setups[r.setup].name + " seed=" + std::to_string(r.seed) +
         (r.rho ? " rho=" + format_rho(*r.rho) : "");
}

const char* status_name(RunStatus s) {
  switch (s) {
    case RunStatus::complete:
      return "complete";
    case RunStatus::skipped:
      return "skipped";
    case RunStatus::failed:
      return "failed";
    case RunStatus::interrupted:
      return "interrupted";
    case RunStatus::taken_over:
      return "taken_over";
  }
  return "?";
}

// The run's result file as it is now, if there is one.
std::optional<RunRecord> result_of(const Experiment& e, const RunSpec& r) {
  const std::string path = result_path(e, r);
  if (!std::filesystem::exists(path)) return std::nullopt;
  return read_run_record(path);
}

// A failed run is trained again by --retry-failed only while its failure is the one this process
// saw first: when another process has retried it since, that attempt's outcome stands.
std::string failure_mark(const std::optional<RunRecord>& r) {
  if (!r || r->status != "failed") return "";
  auto end = r->attributes.find("end_time");
  return std::to_string(r->failed_step) + "|" + r->failure_reason + "|" +
         (end == r->attributes.end() ? "" : end->second);
}

// Sleeps up to `seconds`, waking early on Ctrl-C.
void nap(double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!g_stop.load() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

void print_resume_hint(const Experiment& e, const RunArgs& args) {
  std::cerr << "  flatface run " << e.file;
  for (const auto& o : args.experiment.overrides) std::cerr << " --set '" << o << "'";
  std::cerr << '\n';
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
  if (args.workers > 1 || args.devices.size() > 1) return run_workers(g, args, e, runs);
  if (!args.devices.empty()) e.device = args.devices.front();
  if (!args.device.empty()) e.device = args.device;
  int threads = apply_threads(g, &e);
  auto registry = open_registry(g, &e);
  GridResources shared;
  shared.registry = registry.get();
  ClaimFolder claims(e.output, args.stale_after);
  const WorkerEvents events(args.progress_fd);

  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);  // Slurm's time limit: save, then the next task resumes
  if (events.enabled())
    std::signal(SIGPIPE, SIG_IGN);  // a parent that has gone is no reason to die
  spdlog::info("{}: {} runs on {} ({} threads) -> {}", e.name, runs.size(),
               resolve_device(e.device), threads, e.output);
  int failed = 0, done = 0, skipped = 0, by_others = 0;
  double train_seconds = 0, eval_seconds = 0, save_seconds = 0;
  auto send_summary = [&] {
    events.send({"summary", std::to_string(done), std::to_string(failed),
                 std::to_string(train_seconds), std::to_string(eval_seconds),
                 std::to_string(save_seconds), std::to_string(claims.seconds_spent())});
  };
  // What each run was when this process started: a run completed later was trained by another.
  std::vector<std::optional<RunRecord>> at_start;
  for (const auto& r : runs) at_start.push_back(result_of(e, r));
  std::vector<bool> settled(runs.size(), false);
  const double poll_seconds = std::clamp(args.stale_after / 10, 0.1, 2.0);
  std::string last_waiting;
  for (;;) {
    auto board = claims.snapshot();
    std::vector<std::string> busy;  // "label (id) on host:pid"
    bool trained = false;
    for (std::size_t i = 0; i < runs.size() && !g_stop.load(); ++i) {
      if (settled[i]) continue;
      const auto& r = runs[i];
      const std::string label = run_label(e, r);
      auto now = result_of(e, r);
      const bool complete_at_start = at_start[i] && at_start[i]->status == "complete";
      if (now && now->status == "complete") {
        // Claim files of a holder that died between its last write and removing them.
        if (auto it = board.find(r.id);
            it != board.end() && (it->second.released || claims.stale(it->second)))
          claims.remove_all(r.id);
        settled[i] = true;
        ++(complete_at_start ? skipped : by_others);
        spdlog::info("[{}/{}] {} ({}): {}", i + 1, runs.size(), label, r.id,
                     complete_at_start ? "already complete, skipped"
                                       : "complete (trained by another process)");
        continue;
      }
      const bool retry = args.retry_failed && failure_mark(now) == failure_mark(at_start[i]);
      if (now && now->status == "failed" && !retry) {
        settled[i] = true;
        ++failed;
        spdlog::warn("[{}/{}] {} ({}): FAILED: {}", i + 1, runs.size(), label, r.id,
                     now->failure_reason);
        continue;
      }
      std::optional<ClaimInfo> known, holder;
      if (auto it = board.find(r.id); it != board.end()) known = it->second;
      auto claim = claims.acquire(r.id, known, &holder);
      if (!claim) {
        busy.push_back(label + " (" + r.id + ")" + (holder ? " on " + holder->holder() : ""));
        continue;
      }
      if (known && !known->released) {
        const std::string why = claims.staleness(*known) == ClaimFolder::Staleness::exited
                                    ? "its process has exited"
                                    : "no heartbeat for " + format_duration(known->heartbeat_age);
        const std::string note = label + " (" + r.id + "): took over the stale claim of " +
                                 known->holder() + " (" + why + ")";
        spdlog::warn("[{}/{}] {}", i + 1, runs.size(), note);
        events.send({"note", note});
      }
      events.send({"start", std::to_string(i + 1), std::to_string(runs.size()), r.id, label});
      trained = true;

      TrainerOptions opts;
      opts.run_index = i;
      opts.run_count = runs.size();
      opts.live_progress = ::isatty(STDOUT_FILENO) == 1;
      opts.stop = &g_stop;
      opts.threads = threads;
      opts.retry_failed = retry;
      opts.stop_after_steps = args.stop_after_steps;
      opts.holds_run = [&claim] { return claim->still_held(); };
      if (events.enabled()) {
        auto last = std::chrono::steady_clock::now() - std::chrono::seconds(1);
        opts.on_step = [&events, &r, last](const StepProgress& p) mutable {
          const auto now = std::chrono::steady_clock::now();
          if (now - last < std::chrono::milliseconds(500) && p.step < p.steps) return;
          last = now;
          events.send({"step", r.id, std::to_string(p.epoch), std::to_string(p.epochs),
                       std::to_string(p.step), std::to_string(p.steps),
                       std::to_string(p.images_per_second), std::to_string(p.eta_seconds)});
        };
      }
      RunOutcome out = train_run(e, r, shared, opts);
      board = claims.snapshot();  // training took a while: see the claims as they are now
      train_seconds += out.train_seconds;
      eval_seconds += out.eval_seconds;
      save_seconds += out.save_seconds;
      std::string message;
      switch (out.status) {
        case RunStatus::skipped:
          settled[i] = true;
          claim->complete(claims);
          ++(complete_at_start ? skipped : by_others);
          message = "already complete, skipped";
          spdlog::info("[{}/{}] {} ({}): {}", i + 1, runs.size(), label, r.id, message);
          break;
        case RunStatus::failed:
          settled[i] = true;
          claim->release();
          ++failed;
          message = "FAILED: " + out.reason;
          spdlog::warn("[{}/{}] {} ({}): {}", i + 1, runs.size(), label, r.id, message);
          break;
        case RunStatus::taken_over:
          // This process was paused for longer than --stale-after; the run is another's now.
          message = "taken over by another process while this one was paused; left to it";
          spdlog::warn("[{}/{}] {} ({}): {}", i + 1, runs.size(), label, r.id, message);
          if (auto now_done = result_of(e, r); now_done && now_done->status == "complete")
            claim->complete(claims);  // the taker finished it already: no claim file stays
          break;
        case RunStatus::interrupted:
          claim->release();
          events.send(
              {"end", r.id, status_name(out.status), "interrupted, saved at its last step"});
          send_summary();
          std::cerr << "\ninterrupted: run " << r.id << " saved at its last step. Resume with:\n";
          print_resume_hint(e, args);
          return 130;
        case RunStatus::complete: {
          settled[i] = true;
          claim->complete(claims);
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
          char buf[160];
          std::snprintf(buf, sizeof buf, "done in %.0fs, train acc %.2f%%", out.total_seconds,
                        last.train_accuracy * 100);
          message = buf + bench;
          spdlog::info("[{}/{}] {} ({}): {}", i + 1, runs.size(), label, r.id, message);
          break;
        }
      }
      events.send({"end", r.id, status_name(out.status),
                   "[" + std::to_string(i + 1) + "/" + std::to_string(runs.size()) + "] " + label +
                       " (" + r.id + "): " + message});
    }
    if (std::all_of(settled.begin(), settled.end(), [](bool s) { return s; })) break;
    if (g_stop.load()) {
      send_summary();
      std::cerr << "\ninterrupted while waiting for runs held by other processes. Resume with:\n";
      print_resume_hint(e, args);
      return 130;
    }
    // Look again at once after training (what was busy may be done); else the rest is held by
    // other processes: wait for them, and take over any run that goes stale.
    if (trained) continue;
    std::string waiting;
    for (const auto& b : busy) waiting += (waiting.empty() ? "" : "; ") + b;
    if (!busy.empty() && waiting != last_waiting) {
      std::string note = "waiting for " + std::to_string(busy.size()) +
                         (busy.size() == 1 ? " run" : " runs") +
                         " held by other processes: " + waiting;
      spdlog::info("{}", note);
      events.send({"note", note});
      last_waiting = waiting;
    }
    if (!busy.empty()) nap(poll_seconds);
  }
  std::string others =
      by_others > 0 ? ", " + std::to_string(by_others) + " by other processes" : "";
  spdlog::info("{}: {} trained{}, {} already complete, {} failed; results in {}", e.name, done,
               others, skipped, failed, e.output);
  // Where the time went: what is neither a training step nor evaluation (which includes decoding
  // the verification pairs) is the grid's overhead: start-up, plugins, training sets, waiting for
  // the loader, HDF5 files, checkpoints, claims.
  // From main(): loading libtorch before it (~0.75 s with Debian's build) is not included, and a
  // process start time would be wrong for `bash -c "... && flatface run"`, which execs into us.
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - program_start()).count();
  const double other = wall - train_seconds - eval_seconds;
  spdlog::info(
      "{}: wall {:.1f}s = training steps {:.1f}s + evaluation {:.1f}s + other {:.1f}s "
      "({:.1f}% overhead; saving results and checkpoints {:.1f}s, claiming runs {:.2f}s)",
      e.name, wall, train_seconds, eval_seconds, other, wall > 0 ? 100 * other / wall : 0,
      save_seconds, claims.seconds_spent());
  send_summary();
  if (!args.no_report) {
    using namespace flatface::reports;
    auto agg = aggregate_runs(load_results({e.output}), Selection::final_epoch);
    std::cout << '\n' << render_report(agg, Format::markdown) << std::flush;
  }
  return failed > 0 ? 1 : 0;
}

void add_run_commands(CLI::App& app, Globals& g, Command& chosen) {
  static RunArgs args;
  args.stale_after = kDefaultStaleAfterSeconds;
  auto* cmd =
      app.add_subcommand("run", "Train every run of an experiment grid (resumes by default)");
  args.experiment.add_to(*cmd);
  cmd->add_option("--only", args.only,
                  "Select runs: setup=NAME, seed=N, rho=X, id=ID (repeatable)");
  cmd->add_flag("--dry-run", args.dry_run, "List the selected runs, like `plan`");
  cmd->add_flag("--retry-failed", args.retry_failed,
                "Train failed runs again instead of skipping them");
  cmd->add_option(
      "--stop-after-steps", args.stop_after_steps,
      "Save and stop after N training steps, as Ctrl-C would (resume by running again)");
  cmd->add_flag("--no-report", args.no_report, "Do not print the results table at the end");
  cmd->add_option("--workers", args.workers,
                  "Train with N worker processes on this machine, each with its share of the "
                  "threads (--threads: per worker)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--devices", args.devices,
                  "Devices of the workers, comma-separated (cpu, cuda:0, cuda:1, ...), given out "
                  "in turn; alone, one worker per device")
      ->delimiter(',');
  cmd->add_option("--device", args.device, "This process's device instead of the experiment's");
  cmd->add_option("--stale-after", args.stale_after,
                  "Seconds without a heartbeat after which another process takes a run's claim "
                  "over (default 300; keep it above a minute on NFS)")
      ->check(positive_seconds());
  cmd->add_option("--progress-fd", args.progress_fd, "Worker events to this file descriptor")
      ->group("");
  cmd->callback([&g, &chosen] { chosen = [&g] { return run(g, args); }; });
}

const CommandRegistrar run_registrar(20, "run", &add_run_commands);

}  // namespace

void WorkerEvents::send(const std::vector<std::string>& fields) const {
  if (fd_ < 0) return;
  std::string line;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i) line += '\t';
    for (char c : fields[i]) line += (c == '\t' || c == '\n' || c == '\r') ? ' ' : c;
  }
  line += '\n';
  // One write per line (shorter than PIPE_BUF in practice); a parent that has gone is ignored.
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

}  // namespace flatface::cli
