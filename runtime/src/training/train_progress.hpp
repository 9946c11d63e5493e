// What a training run tells whoever watches it (a terminal, a grid worker's parent), as fastText's
// TrainCallback does: the trainer reports, the watcher decides what to show.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "results/result_store.hpp"

namespace flatface {

// Where a run stands after a training step.
struct RunProgress {
  std::int64_t epoch = 0, epochs = 0;  // the epoch in progress, 1-based
  std::int64_t step = 0, steps = 0;    // the step of that epoch, 1-based
  std::int64_t global_step = 0;        // steps done in the whole run, this one included
  double loss = 0, lr = 0, images_per_second = 0, eta_seconds = 0;
};

class TrainCallback {
 public:
  virtual ~TrainCallback() = default;
  // After every training step.
  virtual void on_step(const RunProgress&) {}
  // After an evaluation in the middle of an epoch (train.eval_every_steps).
  virtual void on_evaluation(std::int64_t /*global_step*/,
                             const std::map<std::string, BenchmarkMetrics>&) {}
  // After an epoch's metrics are written; `two_pass`: the strategy may take a second pass.
  virtual void on_epoch(const EpochMetrics&, std::int64_t /*epochs*/, bool /*two_pass*/) {}
  // When the session stops before the end of an epoch (interrupted, failed, taken over).
  virtual void on_stop() {}
};

// The terminal's view of a run: one updating line on a terminal, else a log line every
// `log_every_steps` steps; a line per epoch and per mid-epoch evaluation either way.
class ConsoleProgress : public TrainCallback {
 public:
  // `tag` "[k/N]" and `label` name the run in every line.
  ConsoleProgress(std::string tag, std::string label, bool live, std::int64_t log_every_steps);

  void on_step(const RunProgress& p) override;
  void on_evaluation(std::int64_t global_step,
                     const std::map<std::string, BenchmarkMetrics>& metrics) override;
  void on_epoch(const EpochMetrics& m, std::int64_t epochs, bool two_pass) override;
  void on_stop() override;

 private:
  void end_line();

  std::string tag_, label_;
  bool live_;
  std::int64_t log_every_steps_;
  std::int64_t last_logged_ = -1;  // the global step of the last log line (-1: none yet)
  bool line_open_ = false;         // a live line waits for its newline
};

}  // namespace flatface
