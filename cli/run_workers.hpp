// `flatface run --workers N`: N worker processes on this machine, each a `flatface run` of the same
// grid that claims runs in the shared output folder; one display and one summary for them all.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"

namespace flatface::cli {

struct RunArgs {
  ExperimentArgs experiment;
  std::vector<std::string> only;
  bool dry_run = false;
  bool retry_failed = false;
  bool no_report = false;
  std::int64_t stop_after_steps = -1;
  double stale_after = 0;            // seconds; set from kDefaultStaleAfterSeconds
  int workers = 0;                   // 0: one process (or one per --devices entry)
  std::vector<std::string> devices;  // one per worker, repeated round-robin
  std::string device;                // this process's device, instead of the experiment's
  int progress_fd = -1;              // a worker: where its events go (internal)
  int nproc = 0;                     // data-parallel ranks started on this machine (0, 1: none)
  double dist_timeout = 0;           // seconds a collective may wait for another rank
};

// What a worker tells the parent, one tab-separated line per event (tabs and newlines in the
// fields become spaces):
//   start <k> <n> <run_id> <label>         it claimed run k of n and starts training it
//   step <run_id> <epoch> <epochs> <step> <steps> <img/s> <eta_s>
//   end <run_id> <status> <message>        the run ended (status: RunStatus's name)
//   note <message>                         a line worth showing (a takeover, waiting)
//   summary <trained> <failed> <train_s> <eval_s> <save_s> <claim_s>
class WorkerEvents {
 public:
  explicit WorkerEvents(int fd) : fd_(fd) {}
  bool enabled() const { return fd_ >= 0; }
  void send(const std::vector<std::string>& fields) const;

 private:
  int fd_;
};

// Starts the workers, shows their progress, and returns the exit code: 130 when interrupted, 1
// when a run failed or a worker died with runs left unfinished, else 0. `runs` is the selection.
int run_workers(const Globals& g, const RunArgs& args, const Experiment& e,
                const std::vector<RunSpec>& runs);

}  // namespace flatface::cli
