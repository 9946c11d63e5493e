// The arguments of `flatface run`, and `flatface run --workers N`: N worker processes on this
// machine, each a `flatface run` of the same grid that claims runs in the shared output folder
// (runtime/src/grid/grid_workers.hpp); one display and one summary for them all.
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

// Starts the workers, shows their progress, and returns the exit code: 130 when interrupted, 1
// when a run failed or a worker died with runs left unfinished, else 0. `runs` is the selection.
int run_workers(const Globals& g, const RunArgs& args, const Experiment& e,
                const std::vector<RunSpec>& runs);

}  // namespace flatface::cli
