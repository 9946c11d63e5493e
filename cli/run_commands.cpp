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
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include "flatness/analysis.hpp"
#include "common.hpp"
#include "distributed/c10d_communicator.hpp"
#include "distributed/launch_env.hpp"
#include "distributed/local_ranks.hpp"
#include "report_tables.hpp"
#include "grid/run_claim.hpp"
#include "run_workers.hpp"
#include "training/trainer.hpp"

namespace flatface::cli {

namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_interrupt(int) {
  if (g_stop.exchange(true)) std::_Exit(130);  // a second Ctrl-C quits at once
}

std::string run_label(const Experiment& e, const RunSpec& r) {
  return describe_run(e, r);
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

// "done in 41s, 52.3 ms/step (second pass on 20% of steps), train acc 63.10%, avg benchmark
// 58.20%": the step time is amortised over this session's steps, one- and two-pass alike.
std::string completion_message(const RunOutcome& out) {
  const auto& last = out.record.epochs.back();
  char buf[224];
  int n = std::snprintf(buf, sizeof buf, "done in %.0fs", out.total_seconds);
  if (out.steps > 0) {
    n += std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), ", %.1f ms/step",
                       1e3 * out.train_seconds / static_cast<double>(out.steps));
  }
  if (out.second_pass_steps > 0) {  // a one-pass strategy (plain SGD) has nothing to say here
    n += std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n),
                       " (second pass on %.0f%% of steps)",
                       100.0 * static_cast<double>(out.second_pass_steps) / static_cast<double>(out.steps));
  }
  n += std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), ", train acc %.2f%%",
                     last.train_accuracy * 100);
  if (!last.benchmarks.empty()) {
    double sum = 0;
    for (const auto& [name, b] : last.benchmarks) sum += b.accuracy;
    std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), ", avg benchmark %.2f%%",
                  100 * sum / static_cast<double>(last.benchmarks.size()));
  }
  return buf;
}

// A run's progress on this terminal and, for a grid worker, as events to its parent: at most two
// a second, and the last step of every epoch.
class RunDisplay : public ConsoleProgress {
 public:
  RunDisplay(std::string tag, std::string label, std::int64_t log_every_steps,
             const WorkerEvents& events, std::string run_id)
      : ConsoleProgress(std::move(tag), std::move(label), ::isatty(STDOUT_FILENO) == 1,
                        log_every_steps),
        events_(events),
        run_id_(std::move(run_id)) {}

  void on_step(const RunProgress& p) override {
    ConsoleProgress::on_step(p);
    if (!events_.enabled()) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(500) && p.step < p.steps) return;
    last_ = now;
    events_.send({"step", run_id_, std::to_string(p.epoch), std::to_string(p.epochs),
                  std::to_string(p.step), std::to_string(p.steps),
                  std::to_string(p.images_per_second), std::to_string(p.eta_seconds)});
  }

 private:
  const WorkerEvents& events_;
  std::string run_id_;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now() - std::chrono::seconds(1);
};

// This process's part of a grid that others may share: passes over the selected runs, training
// each one it can claim, until every run is complete or failed; between passes it waits for the
// runs that other processes hold, and takes over any whose holder stops.
//
// In a data-parallel run every rank walks the grid in step with rank 0: rank 0 alone reads and
// takes the claims and writes files, and publishes each decision (train, busy, settled, stop) in
// the ranks' store, where the others read it.
class SharedGrid {
 public:
  SharedGrid(const Experiment& e, const RunArgs& args, std::vector<RunSpec> runs, int threads,
             GridResources& shared, distributed::Communicator* ranks)
      : e_(e),
        ranks_(ranks),
        args_(args),
        runs_(std::move(runs)),
        threads_(threads),
        shared_(shared),
        claims_(e.output, args.stale_after),
        events_(args.progress_fd),
        settled_(runs_.size(), false) {
    // What each run was at the start: a run complete later was trained by another process.
    for (const auto& r : runs_) at_start_.push_back(result_of(e_, r));
  }

  // 0; 1 when a run failed; 130 when interrupted (the run in progress is saved).
  int train_all() {
    const double poll_seconds = std::clamp(args_.stale_after / 10, 0.1, 2.0);
    std::string last_waiting;
    for (;;) {
      board_ = claims_.snapshot();
      std::vector<std::string> busy;  // "label (id) on host:pid"
      bool trained = false;
      for (std::size_t i = 0; i < runs_.size() && !stopping(); ++i) {
        if (settled_[i]) continue;
        std::optional<ClaimInfo> known, holder;
        std::unique_ptr<HeldClaim> claim;
        const Decision d = decide(i, claim, known, holder);
        if (d == Decision::settled || d == Decision::stop) continue;
        if (d == Decision::busy) {
          busy.push_back(label(i) + (holder ? " on " + holder->holder() : ""));
          continue;
        }
        trained = true;
        if (train(i, std::move(claim), known) == RunStatus::interrupted) {
          std::cerr << "\ninterrupted: run " << runs_[i].id
                    << " saved at its last step. Resume with:\n";
          return interrupted();
        }
        board_ = claims_.snapshot();  // training took a while: the claims as they are now
      }
      if (std::all_of(settled_.begin(), settled_.end(), [](bool s) { return s; })) break;
      if (stopping()) {
        std::cerr << "\ninterrupted while waiting for runs held by other processes. Resume with:\n";
        return interrupted();
      }
      // After training, look again at once (what was busy may be done by now).
      if (trained || busy.empty()) continue;
      std::string waiting;
      for (const auto& b : busy) waiting += (waiting.empty() ? "" : "; ") + b;
      if (waiting != last_waiting) {
        note("waiting for " + std::to_string(busy.size()) + (busy.size() == 1 ? " run" : " runs") +
             " held by other processes: " + waiting);
        last_waiting = waiting;
      }
      nap(poll_seconds);
    }
    if (leader()) print_summary();
    return failed_ > 0 || analysis_failed_ > 0 ? 1 : 0;
  }

 private:
  enum class Decision { settled, busy, train, stop };

  bool leader() const { return !ranks_ || ranks_->rank() == 0; }
  // Ctrl-C as rank 0 saw it: the other ranks stop where rank 0 tells them to.
  bool stopping() const { return leader() ? g_stop.load() : stop_published_; }
  std::string next_decision_key() { return "grid/" + std::to_string(decisions_++); }

  // What to do with run i (not yet settled): rank 0 (or the only process) looks at its files
  // and claims, and takes the claim when it can; the other ranks follow rank 0's decision.
  Decision decide(std::size_t i, std::unique_ptr<HeldClaim>& claim,
                  std::optional<ClaimInfo>& known, std::optional<ClaimInfo>& holder) {
    static const char* const names[] = {"settled", "busy", "train", "stop"};
    if (!leader()) {
      const std::string d = ranks_->await(next_decision_key());
      for (int k = 0; k < 4; ++k) {
        if (d != names[k]) continue;
        const auto decision = static_cast<Decision>(k);
        if (decision == Decision::settled) settled_[i] = true;
        if (decision == Decision::stop) stop_published_ = true;
        return decision;
      }
      throw RuntimeError("rank " + std::to_string(ranks_->rank()) +
                         ": unknown grid decision from rank 0: '" + d + "'");
    }
    Decision d = Decision::busy;
    if (g_stop.load()) {
      d = Decision::stop;
    } else if (settle_if_finished(i)) {
      d = Decision::settled;
    } else {
      if (auto it = board_.find(runs_[i].id); it != board_.end()) known = it->second;
      claim = claims_.acquire(runs_[i].id, known, &holder);
      if (claim) d = Decision::train;
    }
    if (ranks_) ranks_->publish(next_decision_key(), names[static_cast<int>(d)]);
    return d;
  }

  std::string tag(std::size_t i) const {
    return "[" + std::to_string(i + 1) + "/" + std::to_string(runs_.size()) + "]";
  }
  std::string label(std::size_t i) const {
    return run_label(e_, runs_[i]) + " (" + runs_[i].id + ")";
  }
  void note(const std::string& text) {
    spdlog::info("{}", text);
    events_.send({"note", text});
  }

  // A complete run (left untouched) or a failed one (unless --retry-failed applies) is settled.
  bool settle_if_finished(std::size_t i) {
    const RunSpec& r = runs_[i];
    const auto now = result_of(e_, r);
    if (now && now->status == "complete") {
      // Claim files of a holder that died between its last write and removing them.
      if (auto it = board_.find(r.id);
          it != board_.end() && (it->second.released || claims_.stale(it->second)))
        claims_.remove_all(r.id);
      settled_[i] = true;
      const bool before = at_start_[i] && at_start_[i]->status == "complete";
      ++(before ? skipped_ : by_others_);
      spdlog::info("{} {}: {}", tag(i), label(i),
                   before ? "already complete, skipped" : "complete (trained by another process)");
      if (before) analyze(i);  // one finished before [analysis] was added, say
      return true;
    }
    if (now && now->status == "failed" && !retry(i, now)) {
      settled_[i] = true;
      ++failed_;
      spdlog::warn("{} {}: FAILED: {}", tag(i), label(i), now->failure_reason);
      return true;
    }
    return false;
  }

  // --retry-failed trains a failed run again only while its failure is the one this process saw
  // at its start: when another process has retried it since, that attempt's outcome stands.
  bool retry(std::size_t i, const std::optional<RunRecord>& now) const {
    return args_.retry_failed && failure_mark(now) == failure_mark(at_start_[i]);
  }

  // Trains run i, which this process has just claimed (from `known`, when that claim was stale).
  RunStatus train(std::size_t i, std::unique_ptr<HeldClaim> claim,
                  const std::optional<ClaimInfo>& known) {
    const RunSpec& r = runs_[i];
    if (known && !known->released) {
      const std::string why = claims_.staleness(*known) == ClaimFolder::Staleness::exited
                                  ? "its process has exited"
                                  : "no heartbeat for " + format_duration(known->heartbeat_age);
      const std::string text =
          label(i) + ": took over the stale claim of " + known->holder() + " (" + why + ")";
      spdlog::warn("{} {}", tag(i), text);
      events_.send({"note", text});
    }
    events_.send(
        {"start", std::to_string(i + 1), std::to_string(runs_.size()), r.id, run_label(e_, r)});
    TrainerOptions opts;
    opts.run_index = i;
    opts.run_count = runs_.size();
    opts.stop = &g_stop;
    opts.threads = threads_;
    opts.retry_failed = retry(i, result_of(e_, r));
    opts.stop_after_steps = args_.stop_after_steps;
    if (claim) opts.holds_run = [&claim] { return claim->still_held(); };
    opts.ranks = ranks_;
    RunDisplay display(tag(i), describe_run(e_, r), e_.train.log_every_steps, events_, r.id);
    // Rank 0 shows the run's progress; the other ranks train quietly.
    if (leader()) opts.progress = &display;
    const RunOutcome out = train_run(e_, r, shared_, opts);
    train_seconds_ += out.train_seconds;
    eval_seconds_ += out.eval_seconds;
    save_seconds_ += out.save_seconds;

    std::string message;
    switch (out.status) {
      case RunStatus::complete:
        settled_[i] = true;
        if (claim) claim->complete(claims_);
        ++done_;
        message = completion_message(out);
        break;
      case RunStatus::skipped:  // completed by another process since this one looked
        settled_[i] = true;
        if (claim) claim->complete(claims_);
        ++by_others_;
        message = "complete (trained by another process)";
        break;
      case RunStatus::failed:
        settled_[i] = true;
        if (claim) claim->release();
        ++failed_;
        message = "FAILED: " + out.reason;
        break;
      case RunStatus::interrupted:
        if (claim) claim->release();
        message = "interrupted, saved at its last step";
        break;
      case RunStatus::taken_over:
        // This process was paused for longer than --stale-after; the run is another's now.
        message = "taken over by another process while this one was paused; left to it";
        if (auto now = result_of(e_, r); claim && now && now->status == "complete")
          claim->complete(claims_);  // the taker has finished it: no claim file stays
        break;
    }
    const bool bad = out.status == RunStatus::failed || out.status == RunStatus::taken_over;
    if (bad)
      spdlog::warn("{} {}: {}", tag(i), label(i), message);
    else
      spdlog::info("{} {}: {}", tag(i), label(i), message);
    events_.send({"end", r.id, status_name(out.status), tag(i) + " " + label(i) + ": " + message});
    if (out.status == RunStatus::complete && leader()) analyze(i);
    return out.status;
  }

  // The experiment's [analysis] of a complete run (skipped when already done with its settings).
  // A failed analysis is reported and counted; the run's results stay as they were.
  void analyze(std::size_t i) {
    if (!e_.analysis || g_stop.load()) return;
    const RunSpec& r = runs_[i];
    RunFiles files{checkpoint_path(e_, r), result_path(e_, r)};
    AnalyzeOptions o;
    o.device = e_.device;
    const bool live = ::isatty(STDOUT_FILENO) == 1;
    const std::string tag = this->tag(i) + " " + run_label(e_, r);
    o.progress = [live, tag](const AnalysisProgress& p) {
      if (!live) return;
      std::fprintf(stdout, "\r%s | analysis: %s %lld/%lld      ", tag.c_str(), p.stage.c_str(),
                   static_cast<long long>(p.done), static_cast<long long>(p.total));
      std::fflush(stdout);
    };
    const auto start = std::chrono::steady_clock::now();
    try {
      const bool done = analyze_run(*shared_.registry, files, o);
      if (live) std::fprintf(stdout, "\n");
      analysis_seconds_ +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (done) spdlog::info("{} {}: analysed", this->tag(i), label(i));
    } catch (const std::exception& err) {
      if (live) std::fprintf(stdout, "\n");
      ++analysis_failed_;
      spdlog::error("{} {}: analysis failed: {}", this->tag(i), label(i), err.what());
    }
  }

  int interrupted() {
    // The other ranks wait for rank 0's next decision: tell them to stop too.
    if (ranks_ && leader()) ranks_->publish(next_decision_key(), "stop");
    if (!leader()) return 130;
    send_summary();
    print_resume_hint(e_, args_);
    return 130;
  }

  void send_summary() const {
    events_.send({"summary", std::to_string(done_), std::to_string(failed_),
                  std::to_string(train_seconds_), std::to_string(eval_seconds_),
                  std::to_string(save_seconds_), std::to_string(claims_.seconds_spent())});
  }

  void print_summary() const {
    const std::string others =
        by_others_ > 0 ? ", " + std::to_string(by_others_) + " by other processes" : "";
    spdlog::info("{}: {} trained{}, {} already complete, {} failed; results in {}", e_.name, done_,
                 others, skipped_, failed_, e_.output);
    // Where the time went: what is neither a training step nor evaluation (which includes
    // decoding the verification pairs) is the grid's overhead: start-up, plugins, training sets,
    // waiting for the loader, HDF5 files, checkpoints, claims, waiting for other processes.
    // From main(): loading libtorch before it (~0.75 s with Debian's build) is not included, and
    // a process start time would be wrong for `bash -c "... && flatface run"`, which execs into
    // us.
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - program_start()).count();
    const double other = wall - train_seconds_ - eval_seconds_ - analysis_seconds_;
    spdlog::info(
        "{}: wall {:.1f}s = training steps {:.1f}s + evaluation {:.1f}s + analysis {:.1f}s + "
        "other {:.1f}s ({:.1f}% overhead; saving results and checkpoints {:.1f}s, claiming runs "
        "{:.2f}s)",
        e_.name, wall, train_seconds_, eval_seconds_, analysis_seconds_, other,
        wall > 0 ? 100 * other / wall : 0, save_seconds_, claims_.seconds_spent());
    if (analysis_failed_ > 0)
      spdlog::error("{}: the analysis of {} runs failed (above)", e_.name, analysis_failed_);
    send_summary();
  }

  const Experiment& e_;
  distributed::Communicator* ranks_;  // nullptr: one process
  std::int64_t decisions_ = 0;        // grid decisions so far (keys in the ranks' store)
  bool stop_published_ = false;
  const RunArgs& args_;
  const std::vector<RunSpec> runs_;
  const int threads_;
  GridResources& shared_;
  ClaimFolder claims_;
  const WorkerEvents events_;
  std::vector<std::optional<RunRecord>> at_start_;
  std::vector<bool> settled_;
  std::map<std::string, ClaimInfo> board_;  // the claims as last seen
  int done_ = 0, skipped_ = 0, by_others_ = 0, failed_ = 0;
  double train_seconds_ = 0, eval_seconds_ = 0, save_seconds_ = 0, analysis_seconds_ = 0;
  int analysis_failed_ = 0;
};

// This process's command line without `--nproc N`: what each of the N ranks runs.
std::vector<std::string> rank_arguments() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> all;
  std::string arg;
  while (std::getline(f, arg, '\0')) all.push_back(arg);
  std::vector<std::string> out;
  for (std::size_t k = 1; k < all.size(); ++k) {
    if (all[k] == "--nproc") {
      ++k;
      continue;
    }
    if (all[k].rfind("--nproc=", 0) == 0) continue;
    out.push_back(all[k]);
  }
  return out;
}

// The device of this rank: cuda:LOCAL_RANK where the experiment trains on CUDA.
std::string rank_device(const std::string& device, const distributed::LaunchEnv& env) {
  const std::string resolved = resolve_device(device);
  if (resolved == "cuda") return "cuda:" + std::to_string(env.local_rank);
  return resolved;
}

int run(const Globals& g, const RunArgs& args) {
  const auto launch = distributed::launch_from_environment();
  // --nproc alone: this process starts the ranks; with --workers, each worker starts its own.
  const bool grid_workers = args.workers > 1 || args.devices.size() > 1;
  if (args.nproc > 1 && !launch && !grid_workers)
    return distributed::run_local_ranks("/proc/self/exe", rank_arguments(), args.nproc);
  Experiment e = args.experiment.load();
  const std::vector<RunSpec> runs = select_runs(e, expand_grid(e), args.only);
  if (args.dry_run) {
    print_plan_text(e, runs);
    return 0;
  }
  if (runs.empty()) throw ConfigError("--only matches no run of " + e.file);
  if (args.workers > 1 || args.devices.size() > 1) return run_workers(g, args, e, runs);
  if (!args.devices.empty()) e.device = args.devices.front();
  if (!args.device.empty()) e.device = args.device;
  // Data-parallel ranks (torchrun, srun, --nproc): one process per device; rank 0 alone writes.
  std::optional<distributed::C10dCommunicator> ranks;
  if (launch) {
    e.device = rank_device(e.device, *launch);
    if (launch->rank != 0) spdlog::set_level(spdlog::level::warn);
    const auto timeout = args.dist_timeout > 0
                             ? std::chrono::milliseconds(static_cast<std::int64_t>(1000 * args.dist_timeout))
                             : std::chrono::milliseconds(distributed::kDefaultCollectiveTimeout);
    ranks.emplace(*launch, c10::Device(e.device), timeout);
    spdlog::info("{}: rank {} of {} ({}), collective timeout {:.0f} s", e.name, launch->rank,
                 launch->world_size, launch->source, timeout.count() / 1000.0);
  }
  int threads = apply_threads(g, &e);
  auto registry = open_registry(g, &e);
  GridResources shared;
  shared.registry = registry.get();

  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);  // Slurm's time limit: save, then the next task resumes
  if (args.progress_fd >= 0)
    std::signal(SIGPIPE, SIG_IGN);  // a parent that has gone is no reason to die
  spdlog::info("{}: {} runs on {} ({} threads) -> {}", e.name, runs.size(),
               resolve_device(e.device), threads, e.output);
  // A grid worker's ranks (--workers with --nproc): rank 0 alone reports to the parent.
  RunArgs rank_args = args;
  if (launch && launch->rank != 0) rank_args.progress_fd = -1;
  SharedGrid grid(e, rank_args, runs, threads, shared,
                  ranks ? &*ranks : &distributed::single_process());
  const int code = grid.train_all();
  if (code != 130 && !args.no_report && (!launch || launch->rank == 0)) {
    using namespace flatface::reports;
    auto agg = aggregate_runs(load_results({e.output}), Selection::final_epoch);
    std::cout << '\n' << render_report(agg, Format::markdown) << std::flush;
  }
  return code;
}

}  // namespace

void add_run_commands(CLI::App& app, Globals& g, Command& chosen) {
  static RunArgs args;
  args.stale_after = kDefaultStaleAfterSeconds;
  auto* cmd =
      app.add_subcommand("run", "Train every run of an experiment grid (resumes by default)");
  args.experiment.add_to(*cmd);
  cmd->add_option("--only", args.only,
                  "Select runs: setup=NAME, seed=N, rho=X, id=ID, or an option such as head.m=0.3 "
                  "(repeatable; all must match)");
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
  cmd->add_option("--nproc", args.nproc,
                  "Train each run data-parallel on N ranks started on this machine (as torchrun "
                  "--nproc-per-node N would; train.batch_size stays the global batch); with "
                  "--workers, each worker trains on N ranks of its own devices")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--dist-timeout", args.dist_timeout,
                  "Data-parallel runs: seconds a collective waits for the other ranks before the "
                  "run stops naming the lost rank (default 120)")
      ->check(positive_seconds());
  cmd->add_option("--stale-after", args.stale_after,
                  "Seconds without a heartbeat after which another process takes a run's claim "
                  "over (default 300; keep it above a minute on NFS)")
      ->check(positive_seconds());
  cmd->add_option("--progress-fd", args.progress_fd, "Worker events to this file descriptor")
      ->group("");
  cmd->callback([&g, &chosen] { chosen = [&g] { return run(g, args); }; });
}


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
