// grid/: the grid of `flatface run`, which any number of processes may share. This folder owns
// the claims that say which process trains which run (run_claim), the runner that walks the grid
// and decides what becomes of each run: settle it, claim it, train it, analyse it, wait for the
// runs other processes hold, and in a data-parallel grid let rank 0 decide for every rank
// (grid_runner); the worker processes of `run --workers` and the events they send their parent
// (grid_workers, worker_events); and where each run stands, for `flatface status` (grid_status).
// It uses the folders below it: experiment/ (runs, ids, labels), training/ (train_run),
// flatness/ (a run's [analysis]), results/ (result files and the words of a run's state) and
// distributed/ (the ranks). It prints nothing and never includes cli/: what happens goes to a
// GridObserver, and the CLI decides what to show.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "distributed/communicator.hpp"
#include "experiment/experiment.hpp"
#include "flatness/analysis.hpp"
#include "grid/run_claim.hpp"
#include "results/run_state.hpp"
#include "training/trainer.hpp"

namespace flatface {

// A run as the grid reports it.
struct GridRun {
  std::size_t index = 0;  // in the selection, 0-based
  std::size_t count = 0;  // runs selected
  std::string id;
  std::string label;  // describe_run(): "SAM-ArcFace seed=1 rho=0.05"

  std::string tag() const;   // "[k/N]", k 1-based
  std::string name() const;  // "label (id)"
};

// How a run that this process did not train was settled.
enum class Settled {
  already_complete,    // complete when this process started (its files are left untouched)
  completed_by_other,  // completed by another process since
  failed,              // failed, and not to be retried
};

// A grid's counts and where its time went, in this process.
struct GridSummary {
  int trained = 0;           // completed by this process
  int already_complete = 0;  // complete before it started
  int by_others = 0;         // completed by other processes meanwhile
  int failed = 0;
  int analysis_failed = 0;
  double train_seconds = 0, eval_seconds = 0, save_seconds = 0, analysis_seconds = 0;
  double claim_seconds = 0;  // creating, reading and refreshing claims: the cost of sharing
  bool stopped = false;      // interrupted: the grid is unfinished
};

// What a grid runner tells whoever watches it (a terminal, a worker's parent), as fastText's
// TrainCallback does: the runner reports, the watcher decides what to show.
class GridObserver {
 public:
  virtual ~GridObserver() = default;
  // A run this process does not train; `reason`: why a failed run failed.
  virtual void run_settled(const GridRun&, Settled, const std::string& /*reason*/) {}
  // This process took a run's stale claim over; `text` names the holder and why it is stale.
  virtual void claim_taken_over(const GridRun&, const std::string& /*text*/) {}
  // This process holds the run's claim and starts training it.
  virtual void run_started(const GridRun&) {}
  // Told of the run's steps and epochs while it trains (null: nothing to tell). Asked on rank 0
  // only: the other ranks train quietly.
  virtual TrainCallback* run_progress(const GridRun&) { return nullptr; }
  // The run's training session ended; `message` says how ("done in 41s, 52.3 ms/step, ...").
  virtual void run_ended(const GridRun&, RunStatus, const std::string& /*message*/) {}
  // The experiment's [analysis] of a complete run (rank 0). `written`: false when the run was
  // analysed with the same settings before.
  virtual void analysis_progress(const GridRun&, const AnalysisProgress&) {}
  virtual void analysis_ended(const GridRun&, bool /*written*/) {}
  virtual void analysis_failed(const GridRun&, const std::string& /*error*/) {}
  // Every run left is held by other processes; `text` lists them. Told when the list changes.
  virtual void waiting(const std::string& /*text*/) {}
  // Stopped (the stop flag, or --stop-after-steps) while training `run`, which is saved at its
  // last step, or while waiting for runs held by others (null).
  virtual void stopped(const GridRun* /*run*/) {}
  // The grid's counts and times, when it ends or stops (rank 0).
  virtual void summary(const GridSummary&) {}
};

struct GridOptions {
  const std::atomic<bool>* stop = nullptr;  // set (Ctrl-C): save the run in progress and stop
  bool retry_failed = false;                // train failed runs again
  std::int64_t stop_after_steps = -1;       // stop as if interrupted after N steps (-1: never)
  double stale_after = kDefaultStaleAfterSeconds;  // seconds until a silent claim is taken over
  int threads = 1;
  // The ranks of a data-parallel grid, never null: one process is rank 0 of 1. Rank 0 alone
  // reads and takes the claims and writes files, and publishes each decision for the others.
  distributed::Communicator* ranks = &distributed::single_process();
};

// This process's part of a grid that others may share: passes over the selected runs, training
// each one it can claim, until every run is complete or failed; between passes it waits for the
// runs that other processes hold, and takes over any whose holder stops.
class GridRunner {
 public:
  // Reads what each run's file says now: a run complete later was trained by another process, and
  // a failed run is retried (retry_failed) only while its failure is the one seen here.
  GridRunner(const Experiment& e, std::vector<RunSpec> runs, GridResources& shared,
             GridOptions options, std::vector<GridObserver*> observers);

  // 0; 1 when a run or an analysis failed; 130 when stopped (the run in progress is saved).
  int run();

 private:
  enum class Decision { settled, busy, train, stop };

  bool leader() const;
  bool stopping() const;
  bool stop_requested() const;
  GridRun grid_run(std::size_t i) const;
  Decision decide(std::size_t i, std::unique_ptr<HeldClaim>& claim, std::optional<ClaimInfo>& known,
                  std::optional<ClaimInfo>& holder);
  bool settle_if_finished(std::size_t i);
  bool retry(std::size_t i, const std::optional<RunRecord>& now) const;
  RunStatus train(std::size_t i, std::unique_ptr<HeldClaim> claim,
                  const std::optional<ClaimInfo>& known);
  void analyze(std::size_t i);
  int stop_at(std::optional<std::size_t> run);
  GridSummary summary(bool stopped) const;
  void nap(double seconds) const;
  template <typename Tell>
  void tell(Tell&& what) const {
    for (GridObserver* o : observers_) what(*o);
  }

  const Experiment& e_;
  const std::vector<RunSpec> runs_;
  GridResources& shared_;
  const GridOptions options_;
  const std::vector<GridObserver*> observers_;
  ClaimFolder claims_;
  std::vector<std::optional<RunRecord>> at_start_;
  std::vector<bool> settled_;
  std::map<std::string, ClaimInfo> board_;  // the claims as last seen
  std::int64_t decisions_ = 0;              // grid decisions so far (keys in the ranks' store)
  bool stop_published_ = false;
  GridSummary counts_;
};

}  // namespace flatface
