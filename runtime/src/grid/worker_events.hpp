// What a grid worker (`flatface run --workers N` starts N of them) tells its parent, one
// tab-separated line per event on a pipe; tabs and newlines inside a field become spaces:
//   start <k> <n> <run_id> <label>         it claimed run k of n and starts training it
//   step <run_id> <epoch> <epochs> <step> <steps> <img/s> <eta_s>
//   end <run_id> <status> <message>        the run ended (status: a RunStatus word)
//   note <message>                         a line worth showing (a claim taken over)
//   waiting <message>                      every run left is held by other processes
//   summary <trained> <failed> <train_s> <eval_s> <save_s> <claim_s>
// The worker's GridRunner reports to a WorkerEventSender; the parent reads the lines with
// parse_worker_event().
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "grid/grid_runner.hpp"
#include "results/run_state.hpp"
#include "training/train_progress.hpp"

namespace flatface {

enum class WorkerEventKind { start, step, end, note, waiting, summary };
const char* to_string(WorkerEventKind kind);
std::optional<WorkerEventKind> parse_worker_event_kind(const std::string& word);

// One event; each kind fills the fields its line carries.
struct WorkerEvent {
  WorkerEventKind kind = WorkerEventKind::note;
  GridRun run;           // start: all of it; step, end: its id
  RunProgress progress;  // step: epoch, epochs, step, steps, images_per_second, eta_seconds
  RunStatus status = RunStatus::complete;  // end
  std::string text;     // end: "[k/N] label (id): message"; note, waiting: the line
  GridSummary summary;  // summary: trained, failed and the times
};

// The event's line, newline included.
std::string format_worker_event(const WorkerEvent& event);
// The event of one line (without its newline); nullopt for a line that is none (an unknown kind,
// too few fields).
std::optional<WorkerEvent> parse_worker_event(const std::string& line);

// A worker's side: what its grid runner reports, written to its parent's pipe as events. Steps
// are sent at most twice a second, and the last step of every epoch always.
class WorkerEventSender : public GridObserver {
 public:
  explicit WorkerEventSender(int fd) : fd_(fd), steps_(*this) {}
  WorkerEventSender(const WorkerEventSender&) = delete;
  WorkerEventSender& operator=(const WorkerEventSender&) = delete;

  void claim_taken_over(const GridRun& run, const std::string& text) override;
  void run_started(const GridRun& run) override;
  TrainCallback* run_progress(const GridRun& run) override;
  void run_ended(const GridRun& run, RunStatus status, const std::string& message) override;
  void waiting(const std::string& text) override;
  void summary(const GridSummary& s) override;

 private:
  class Steps : public TrainCallback {
   public:
    explicit Steps(const WorkerEventSender& sender) : sender_(sender) {}
    void start(const std::string& run_id);
    void on_step(const RunProgress& p) override;

   private:
    const WorkerEventSender& sender_;
    std::string run_id_;
    std::chrono::steady_clock::time_point last_{};
  };

  // One write per line (shorter than PIPE_BUF in practice); a parent that has gone is ignored.
  void send(const WorkerEvent& event) const;

  int fd_;
  Steps steps_;
};

}  // namespace flatface
