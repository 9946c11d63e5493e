// `flatface run --workers N`, the parent's side: N worker processes on this machine, each a
// `flatface run` of the same grid that claims runs in the shared output folder (each with its
// device and its threads, its output in a log file). The parent gives out the devices, starts the
// workers, reads their events (worker_events.hpp) and passes Ctrl-C on; what to show of it all
// is the caller's.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "experiment/experiment.hpp"
#include "grid/grid_runner.hpp"
#include "grid/worker_events.hpp"

namespace flatface {

// The devices of `workers` workers of `nproc` ranks each, given out in turn: `requested`
// (--devices, or --device), else the experiment's `device`, where a plain "cuda" (or "auto") with
// several GPUs spreads the workers over them. A worker of several ranks gets one device per rank,
// joined by '+' ("cuda:0+cuda:1"). Throws ConfigError for a device torch does not know.
std::vector<std::string> worker_devices(const std::vector<std::string>& requested,
                                        const std::string& device, int workers, int nproc);

// What a worker of several ranks is told: "cuda" (rank r takes cuda:r of the GPUs it is shown,
// CUDA_VISIBLE_DEVICES) or "cpu"; a worker of one device, that device.
std::string rank_device_kind(const std::string& worker_device);

// CUDA_VISIBLE_DEVICES for a worker of several GPUs ("2,3" for cuda:2+cuda:3), else "".
std::string visible_gpus(const std::string& worker_device);

// A worker process as its parent sees it.
struct WorkerProcess {
  int index = 0;       // 1-based
  std::string device;  // as worker_devices() gave it out
  std::string log;     // its stdout and stderr
  pid_t pid = -1;
  int fd = -1;          // its event pipe; -1 once closed
  std::string pending;  // bytes of an unfinished line
  bool exited = false;
  int exit_code = -1, signal = 0;
  int completed = 0;    // runs it completed (its `end` events: a killed worker sends no summary)
  GridSummary summary;  // its summary event: the times
};

// The command line of a worker told `device` (this program's arguments, argv[0] included); its
// events go to file descriptor 3.
using WorkerCommand = std::function<std::vector<std::string>(const std::string& device)>;

// Starts one worker per device, its log in `logs`/worker-<host>-<k>.log, in a process group of its
// own (the parent alone receives the terminal's Ctrl-C), told to save and stop (SIGINT) if the
// parent dies. When one cannot start, those started are stopped and the error thrown.
std::vector<WorkerProcess> start_workers(const std::vector<std::string>& devices,
                                         const std::string& logs, const WorkerCommand& command);

// What the parent is told while its workers run.
class WorkerWatcher {
 public:
  virtual ~WorkerWatcher() = default;
  virtual void event(const WorkerProcess&, const WorkerEvent&) {}
  virtual void exited(const WorkerProcess&) {}  // exit_code or signal says how
  // Ctrl-C pressed `presses` times so far, and passed on to every worker.
  virtual void interrupted(int /*presses*/) {}
  // Between two looks at the pipes (at most a fifth of a second apart).
  virtual void idle() {}
};

// Reads the workers' events until every worker has exited. Each press of Ctrl-C counted in
// `interrupts` (by the caller's signal handler) is passed on to the workers once: each saves its
// run and stops; a second press makes them quit at once, as for a single process. Returns how
// many presses there were.
int supervise_workers(std::vector<WorkerProcess>& workers, const std::atomic<int>& interrupts,
                      WorkerWatcher& watcher);

// How the workers ended, together.
struct WorkersOutcome {
  const WorkerProcess* configuration_error = nullptr;  // one that stopped on a usage error
  bool interrupted = false;                            // Ctrl-C, or a worker stopped as if by it
  bool crashed = false;  // a worker died, or exited on an error other than a failed run
  GridSummary totals;    // trained: runs they completed; the times summed
};
WorkersOutcome workers_outcome(const std::vector<WorkerProcess>& workers, int interrupts);

// How many of `runs` have a result file that says complete, and failed.
struct ResultCounts {
  std::size_t complete = 0, failed = 0;
};
ResultCounts count_results(const Experiment& e, const std::vector<RunSpec>& runs);

// The exit code of a grid its workers have finished (not interrupted, no configuration error): 1
// when a run failed or a worker died with runs left unfinished, else 0.
int workers_exit_code(const WorkersOutcome& outcome, const ResultCounts& results, std::size_t runs);

}  // namespace flatface
