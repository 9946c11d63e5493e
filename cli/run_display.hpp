// What `flatface run` shows of this process's grid: a log line for each run that ends or is
// settled, the live progress of the run in training and of its analysis, and the summary.
#pragma once

#include <optional>

#include "experiment/experiment.hpp"
#include "grid/grid_runner.hpp"
#include "training/train_progress.hpp"

namespace flatface::cli {

class GridConsole : public GridObserver {
 public:
  explicit GridConsole(const Experiment& e);

  void run_settled(const GridRun& run, Settled how, const std::string& reason) override;
  void claim_taken_over(const GridRun& run, const std::string& text) override;
  TrainCallback* run_progress(const GridRun& run) override;
  void run_ended(const GridRun& run, RunStatus status, const std::string& message) override;
  void analysis_progress(const GridRun& run, const AnalysisProgress& p) override;
  void analysis_ended(const GridRun& run, bool written) override;
  void analysis_failed(const GridRun& run, const std::string& error) override;
  void waiting(const std::string& text) override;
  void stopped(const GridRun* run) override;
  void summary(const GridSummary& s) override;

 private:
  const Experiment& e_;
  bool live_;  // stdout is a terminal: progress lines update in place
  std::optional<ConsoleProgress> progress_;
};

}  // namespace flatface::cli
