#include "run_display.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "common.hpp"

namespace flatface::cli {

GridConsole::GridConsole(const Experiment& e) : e_(e), live_(::isatty(STDOUT_FILENO) == 1) {}

void GridConsole::run_settled(const GridRun& run, Settled how, const std::string& reason) {
  switch (how) {
    case Settled::already_complete:
      spdlog::info("{} {}: already complete, skipped", run.tag(), run.name());
      break;
    case Settled::completed_by_other:
      spdlog::info("{} {}: complete (trained by another process)", run.tag(), run.name());
      break;
    case Settled::failed:
      spdlog::warn("{} {}: FAILED: {}", run.tag(), run.name(), reason);
      break;
  }
}

void GridConsole::claim_taken_over(const GridRun& run, const std::string& text) {
  spdlog::warn("{} {}", run.tag(), text);
}

TrainCallback* GridConsole::run_progress(const GridRun& run) {
  progress_.emplace(run.tag(), run.label, live_, e_.train.log_every_steps);
  return &*progress_;
}

void GridConsole::run_ended(const GridRun& run, RunStatus status, const std::string& message) {
  if (status == RunStatus::failed || status == RunStatus::taken_over)
    spdlog::warn("{} {}: {}", run.tag(), run.name(), message);
  else
    spdlog::info("{} {}: {}", run.tag(), run.name(), message);
}

void GridConsole::analysis_progress(const GridRun& run, const AnalysisProgress& p) {
  if (!live_) return;
  std::fprintf(stdout, "\r%s %s | analysis: %s %lld/%lld      ", run.tag().c_str(),
               run.label.c_str(), p.stage.c_str(), static_cast<long long>(p.done),
               static_cast<long long>(p.total));
  std::fflush(stdout);
}

void GridConsole::analysis_ended(const GridRun& run, bool written) {
  if (live_) std::fprintf(stdout, "\n");
  if (written) spdlog::info("{} {}: analysed", run.tag(), run.name());
}

void GridConsole::analysis_failed(const GridRun& run, const std::string& error) {
  if (live_) std::fprintf(stdout, "\n");
  spdlog::error("{} {}: analysis failed: {}", run.tag(), run.name(), error);
}

void GridConsole::waiting(const std::string& text) {
  spdlog::info("{}", text);
}

void GridConsole::stopped(const GridRun* run) {
  if (run)
    std::cerr << "\ninterrupted: run " << run->id << " saved at its last step. Resume with:\n";
  else
    std::cerr << "\ninterrupted while waiting for runs held by other processes. Resume with:\n";
}

void GridConsole::summary(const GridSummary& s) {
  if (s.stopped) return;  // the resume hint says what is left
  const std::string others =
      s.by_others > 0 ? ", " + std::to_string(s.by_others) + " by other processes" : "";
  spdlog::info("{}: {} trained{}, {} already complete, {} failed; results in {}", e_.name,
               s.trained, others, s.already_complete, s.failed, e_.output);
  // Where the time went: what is neither a training step nor evaluation (which includes decoding
  // the verification pairs) is the grid's overhead: start-up, plugins, training sets, waiting
  // for the loader, HDF5 files, checkpoints, claims, waiting for other processes. From main():
  // loading libtorch before it (~0.75 s with Debian's build) is not included, and a process start
  // time would be wrong for `bash -c "... && flatface run"`, which execs into us.
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - program_start()).count();
  const double other = wall - s.train_seconds - s.eval_seconds - s.analysis_seconds;
  spdlog::info(
      "{}: wall {:.1f}s = training steps {:.1f}s + evaluation {:.1f}s + analysis {:.1f}s + "
      "other {:.1f}s ({:.1f}% overhead; saving results and checkpoints {:.1f}s, claiming runs "
      "{:.2f}s)",
      e_.name, wall, s.train_seconds, s.eval_seconds, s.analysis_seconds, other,
      wall > 0 ? 100 * other / wall : 0, s.save_seconds, s.claim_seconds);
  if (s.analysis_failed > 0)
    spdlog::error("{}: the analysis of {} runs failed (above)", e_.name, s.analysis_failed);
}

}  // namespace flatface::cli
