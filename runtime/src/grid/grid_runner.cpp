#include "grid/grid_runner.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <utility>

#include "distributed/communicator.hpp"
#include "flatface/options.hpp"

namespace flatface {

namespace {

using Clock = std::chrono::steady_clock;

// What rank 0 publishes for the other ranks, one word per decision.
constexpr const char* kDecisionNames[] = {"settled", "busy", "train", "stop"};

// The run's result file as it is now, if there is one.
std::optional<RunRecord> result_of(const Experiment& e, const RunSpec& r) {
  const std::string path = result_path(e, r);
  if (!std::filesystem::exists(path)) return std::nullopt;
  return read_run_record(path);
}

// What tells one failure from another: a failed run is trained again by retry_failed only while
// its failure is the one this process saw first (another process may have retried it since).
std::string failure_mark(const std::optional<RunRecord>& r) {
  if (!r || r->status != RunState::failed) return "";
  auto end = r->attributes.find("end_time");
  return std::to_string(r->failed_step) + "|" + r->failure_reason + "|" +
         (end == r->attributes.end() ? "" : end->second);
}

// "done in 41s, 52.3 ms/step (second pass on 20% of steps), train acc 63.10%, avg benchmark
// 58.20%": the step time is amortised over this session's steps, one- and two-pass alike.
std::string completion_message(const RunOutcome& out) {
  const auto& last = out.record.epochs.back();
  char buf[224];
  int n = std::snprintf(buf, sizeof buf, "done in %.0fs", out.total_seconds);
  auto left = [&n] { return sizeof buf - static_cast<std::size_t>(n); };
  if (out.steps > 0)
    n += std::snprintf(buf + n, left(), ", %.1f ms/step",
                       1e3 * out.train_seconds / static_cast<double>(out.steps));
  if (out.second_pass_steps > 0)  // a one-pass strategy (plain SGD) has nothing to say here
    n += std::snprintf(
        buf + n, left(), " (second pass on %.0f%% of steps)",
        100.0 * static_cast<double>(out.second_pass_steps) / static_cast<double>(out.steps));
  n += std::snprintf(buf + n, left(), ", train acc %.2f%%", last.train_accuracy * 100);
  if (!last.benchmarks.empty()) {
    double sum = 0;
    for (const auto& [name, b] : last.benchmarks) sum += b.accuracy;
    std::snprintf(buf + n, left(), ", avg benchmark %.2f%%",
                  100 * sum / static_cast<double>(last.benchmarks.size()));
  }
  return buf;
}

// The observers' progress callbacks, told in turn.
class ProgressCallbacks : public TrainCallback {
 public:
  void add(TrainCallback* c) {
    if (c) callbacks_.push_back(c);
  }
  bool empty() const { return callbacks_.empty(); }
  void on_step(const RunProgress& p) override {
    for (auto* c : callbacks_) c->on_step(p);
  }
  void on_evaluation(std::int64_t step,
                     const std::map<std::string, BenchmarkMetrics>& metrics) override {
    for (auto* c : callbacks_) c->on_evaluation(step, metrics);
  }
  void on_epoch(const EpochMetrics& m, std::int64_t epochs, bool two_pass) override {
    for (auto* c : callbacks_) c->on_epoch(m, epochs, two_pass);
  }
  void on_stop() override {
    for (auto* c : callbacks_) c->on_stop();
  }

 private:
  std::vector<TrainCallback*> callbacks_;
};

}  // namespace

std::string GridRun::tag() const {
  return "[" + std::to_string(index + 1) + "/" + std::to_string(count) + "]";
}

std::string GridRun::name() const {
  return label + " (" + id + ")";
}

GridRunner::GridRunner(const Experiment& e, std::vector<RunSpec> runs, GridResources& shared,
                       GridOptions options, std::vector<GridObserver*> observers)
    : e_(e),
      runs_(std::move(runs)),
      shared_(shared),
      options_(options),
      observers_(std::move(observers)),
      claims_(e.output, options.stale_after),
      settled_(runs_.size(), false) {
  for (const auto& r : runs_) at_start_.push_back(result_of(e_, r));
}

int GridRunner::run() {
  const double poll_seconds = std::clamp(options_.stale_after / 10, 0.1, 2.0);
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
        busy.push_back(grid_run(i).name() + (holder ? " on " + holder->holder() : ""));
        continue;
      }
      trained = true;
      if (train(i, std::move(claim), known) == RunStatus::interrupted) return stop_at(i);
      board_ = claims_.snapshot();  // training took a while: the claims as they are now
    }
    if (std::all_of(settled_.begin(), settled_.end(), [](bool s) { return s; })) break;
    if (stopping()) return stop_at(std::nullopt);
    // After training, look again at once (what was busy may be done by now).
    if (trained || busy.empty()) continue;
    std::string waiting;
    for (const auto& b : busy) waiting += (waiting.empty() ? "" : "; ") + b;
    if (waiting != last_waiting) {
      const std::string text = "waiting for " + std::to_string(busy.size()) +
                               (busy.size() == 1 ? " run" : " runs") +
                               " held by other processes: " + waiting;
      tell([&](GridObserver& o) { o.waiting(text); });
      last_waiting = waiting;
    }
    nap(poll_seconds);
  }
  if (leader()) tell([s = summary(false)](GridObserver& o) { o.summary(s); });
  return counts_.failed > 0 || counts_.analysis_failed > 0 ? 1 : 0;
}

bool GridRunner::leader() const {
  return options_.ranks->rank() == 0;
}

bool GridRunner::stop_requested() const {
  return options_.stop && options_.stop->load();
}

// A stop as rank 0 saw it: the other ranks stop where rank 0 tells them to.
bool GridRunner::stopping() const {
  return leader() ? stop_requested() : stop_published_;
}

GridRun GridRunner::grid_run(std::size_t i) const {
  return {i, runs_.size(), runs_[i].id, describe_run(e_, runs_[i])};
}

// What to do with run i (not yet settled): rank 0 (or the only process) looks at its files and
// claims, and takes the claim when it can; the other ranks follow rank 0's decision.
GridRunner::Decision GridRunner::decide(std::size_t i, std::unique_ptr<HeldClaim>& claim,
                                        std::optional<ClaimInfo>& known,
                                        std::optional<ClaimInfo>& holder) {
  const std::string key = "grid/" + std::to_string(decisions_++);
  if (!leader()) {
    const std::string word = options_.ranks->await(key);
    for (int k = 0; k < 4; ++k) {
      if (word != kDecisionNames[k]) continue;
      const auto decision = static_cast<Decision>(k);
      if (decision == Decision::settled) settled_[i] = true;
      if (decision == Decision::stop) stop_published_ = true;
      return decision;
    }
    throw RuntimeError("rank " + std::to_string(options_.ranks->rank()) +
                       ": unknown grid decision from rank 0: '" + word + "'");
  }
  Decision d = Decision::busy;
  if (stop_requested()) {
    d = Decision::stop;
  } else if (settle_if_finished(i)) {
    d = Decision::settled;
  } else {
    if (auto it = board_.find(runs_[i].id); it != board_.end()) known = it->second;
    claim = claims_.acquire(runs_[i].id, known, &holder);
    if (claim) d = Decision::train;
  }
  options_.ranks->publish(key, kDecisionNames[static_cast<int>(d)]);
  return d;
}

// A complete run (left untouched) or a failed one (unless retry_failed applies) is settled.
bool GridRunner::settle_if_finished(std::size_t i) {
  const RunSpec& r = runs_[i];
  const auto now = result_of(e_, r);
  if (now && now->status == RunState::complete) {
    // Claim files of a holder that died between its last write and removing them.
    if (auto it = board_.find(r.id);
        it != board_.end() && claims_.state(it->second) != RunState::running)
      claims_.remove_all(r.id);
    settled_[i] = true;
    const bool before = at_start_[i] && at_start_[i]->status == RunState::complete;
    ++(before ? counts_.already_complete : counts_.by_others);
    const GridRun run = grid_run(i);
    tell([&](GridObserver& o) {
      o.run_settled(run, before ? Settled::already_complete : Settled::completed_by_other, "");
    });
    if (before) analyze(i);  // one finished before [analysis] was added, say
    return true;
  }
  if (now && now->status == RunState::failed && !retry(i, now)) {
    settled_[i] = true;
    ++counts_.failed;
    const GridRun run = grid_run(i);
    tell([&](GridObserver& o) { o.run_settled(run, Settled::failed, now->failure_reason); });
    return true;
  }
  return false;
}

bool GridRunner::retry(std::size_t i, const std::optional<RunRecord>& now) const {
  return options_.retry_failed && failure_mark(now) == failure_mark(at_start_[i]);
}

// Trains run i, which this process has just claimed (from `known`, when that claim was stale).
RunStatus GridRunner::train(std::size_t i, std::unique_ptr<HeldClaim> claim,
                            const std::optional<ClaimInfo>& known) {
  const RunSpec& r = runs_[i];
  const GridRun run = grid_run(i);
  if (known && !known->released) {
    const std::string why = claims_.staleness(*known) == ClaimFolder::Staleness::exited
                                ? "its process has exited"
                                : "no heartbeat for " + format_duration(known->heartbeat_age);
    const std::string text =
        run.name() + ": took over the stale claim of " + known->holder() + " (" + why + ")";
    tell([&](GridObserver& o) { o.claim_taken_over(run, text); });
  }
  tell([&](GridObserver& o) { o.run_started(run); });
  TrainerOptions opts;
  opts.run_index = i;
  opts.run_count = runs_.size();
  opts.stop = options_.stop;
  opts.threads = options_.threads;
  opts.retry_failed = retry(i, result_of(e_, r));
  opts.stop_after_steps = options_.stop_after_steps;
  if (claim) opts.holds_run = [&claim] { return claim->still_held(); };
  opts.ranks = options_.ranks;
  ProgressCallbacks progress;
  if (leader()) {  // the other ranks train quietly
    for (GridObserver* o : observers_) progress.add(o->run_progress(run));
    if (!progress.empty()) opts.progress = &progress;
  }
  const RunOutcome out = train_run(e_, r, shared_, opts);
  counts_.train_seconds += out.train_seconds;
  counts_.eval_seconds += out.eval_seconds;
  counts_.save_seconds += out.save_seconds;

  std::string message;
  switch (out.status) {
    case RunStatus::complete:
      settled_[i] = true;
      if (claim) claim->complete(claims_);
      ++counts_.trained;
      message = completion_message(out);
      break;
    case RunStatus::skipped:  // completed by another process since this one looked
      settled_[i] = true;
      if (claim) claim->complete(claims_);
      ++counts_.by_others;
      message = "complete (trained by another process)";
      break;
    case RunStatus::failed:
      settled_[i] = true;
      if (claim) claim->release();
      ++counts_.failed;
      message = "FAILED: " + out.reason;
      break;
    case RunStatus::interrupted:
      if (claim) claim->release();
      message = "interrupted, saved at its last step";
      break;
    case RunStatus::taken_over:
      // This process was paused for longer than stale_after; the run is another's now.
      message = "taken over by another process while this one was paused; left to it";
      if (auto now = result_of(e_, r); claim && now && now->status == RunState::complete)
        claim->complete(claims_);  // the taker has finished it: no claim file stays
      break;
  }
  tell([&](GridObserver& o) { o.run_ended(run, out.status, message); });
  if (out.status == RunStatus::complete && leader()) analyze(i);
  return out.status;
}

// The experiment's [analysis] of a complete run (skipped when already done with its settings).
// A failed analysis is reported and counted; the run's results stay as they were.
void GridRunner::analyze(std::size_t i) {
  if (!e_.analysis || stop_requested()) return;
  const RunSpec& r = runs_[i];
  const GridRun run = grid_run(i);
  AnalyzeOptions o;
  o.device = e_.device;
  o.progress = [this, &run](const AnalysisProgress& p) {
    tell([&](GridObserver& obs) { obs.analysis_progress(run, p); });
  };
  const auto start = Clock::now();
  try {
    const bool written =
        analyze_run(*shared_.registry, RunFiles{checkpoint_path(e_, r), result_path(e_, r)}, o);
    counts_.analysis_seconds += std::chrono::duration<double>(Clock::now() - start).count();
    tell([&](GridObserver& obs) { obs.analysis_ended(run, written); });
  } catch (const std::exception& err) {
    ++counts_.analysis_failed;
    tell([&](GridObserver& obs) { obs.analysis_failed(run, err.what()); });
  }
}

// Stopped while training run `i` (saved), or while waiting (nullopt): 130.
int GridRunner::stop_at(std::optional<std::size_t> i) {
  const std::optional<GridRun> run = i ? std::optional<GridRun>(grid_run(*i)) : std::nullopt;
  tell([&](GridObserver& o) { o.stopped(run ? &*run : nullptr); });
  if (!leader()) return 130;
  // The other ranks wait for rank 0's next decision: tell them to stop too.
  options_.ranks->publish("grid/" + std::to_string(decisions_++), "stop");
  tell([s = summary(true)](GridObserver& o) { o.summary(s); });
  return 130;
}

GridSummary GridRunner::summary(bool stopped) const {
  GridSummary s = counts_;
  s.claim_seconds = claims_.seconds_spent();
  s.stopped = stopped;
  return s;
}

// Sleeps up to `seconds`, waking early when asked to stop.
void GridRunner::nap(double seconds) const {
  const auto until = Clock::now() + std::chrono::duration<double>(seconds);
  while (!stop_requested() && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

}  // namespace flatface
