// training/: one run, start to end. The trainer (this file: resume, set-up, epochs, evaluation,
// checkpoints, the result file), the host's side of a step (train_step.hpp: the StepContext a
// perturbation plugin drives), the model made ready on a device (device_model.hpp), SGD, the
// learning-rate schedule, checkpoints and progress callbacks. Uses experiment/, plugin_host/,
// data/, evaluation/, results/, formats/ and distributed/; knows nothing of grids or claims.
//
// Trains one run of a grid: builds its objects, runs the epochs, evaluates, checkpoints, and
// records every metric in the run's HDF5 file.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "distributed/communicator.hpp"
#include "experiment/experiment.hpp"
#include "flatface/dataset.hpp"
#include "plugin_host/registry.hpp"
#include "results/result_store.hpp"
#include "results/run_state.hpp"  // RunStatus: how a session ended
#include "training/train_progress.hpp"

namespace flatface {

struct RunOutcome {
  RunStatus status = RunStatus::complete;
  std::string reason;        // why it failed
  std::string result_path;   // the run's .h5 file
  RunRecord record;          // what was written last
  double train_seconds = 0;  // time inside training steps
  double eval_seconds = 0;   // time inside evaluation, opening the verification sets included
  double save_seconds = 0;   // writing the result file and the checkpoint after each epoch
  std::int64_t steps = 0;    // training steps taken in this session
  std::int64_t second_pass_steps = 0;  // of which made a second pass
  double total_seconds = 0;
};

// Objects shared by every run of a grid.
struct GridResources {
  const Registry* registry = nullptr;
  std::map<std::string, std::shared_ptr<VerificationSet>> verification;  // by benchmark name
  std::map<std::int64_t, std::shared_ptr<TrainSet>> train_sets;          // by seed
};

struct TrainerOptions {
  std::size_t run_index = 0;  // k of N, for progress lines
  std::size_t run_count = 1;
  const std::atomic<bool>* stop = nullptr;  // set by Ctrl-C: stop after the current step and save
  int threads = 1;
  // Train a failed run again (from its last checkpoint) instead of skipping it.
  bool retry_failed = false;
  // Stop as if interrupted after this many steps in this session (-1: never; 0: save the starting
  // point, e.g. the [model] init weights, without training); for time-boxed sessions and for
  // tests of resume.
  std::int64_t stop_after_steps = -1;
  // Told of every step, mid-epoch evaluation and epoch (e.g. a ConsoleProgress); may be null.
  TrainCallback* progress = nullptr;
  // Asked before every write to the run's files: false when this process no longer holds the run
  // (its claim was taken over); the run then stops without writing. Empty: always held.
  std::function<bool()> holds_run;
  // The ranks that train this run together (data-parallel training), never null: one process is
  // rank 0 of 1. Rank 0 alone evaluates and writes the run's files; the others wait for it.
  distributed::Communicator* ranks = &distributed::single_process();
};

// Now, in UTC, as ISO 8601 ("2026-11-28T01:02:03Z"): the times written into result files.
std::string utc_timestamp();

// "12m05s", "3h07m"; "?" when not a finite, non-negative number of seconds.
std::string format_duration(double seconds);

// Resolves "auto" | "cpu" | "cuda" | "cuda:N" to a device string torch accepts.
std::string resolve_device(const std::string& requested);

std::string result_path(const Experiment& e, const RunSpec& run);
std::string checkpoint_path(const Experiment& e, const RunSpec& run);

RunOutcome train_run(const Experiment& e, const RunSpec& run, GridResources& shared,
                     const TrainerOptions& options);

}  // namespace flatface
