// Where each run of a grid stands, from its result file and its claim: for `flatface status` and
// for the runs a report lists as missing.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "experiment/experiment.hpp"
#include "grid/run_claim.hpp"
#include "results/run_state.hpp"

namespace flatface {

struct RunStanding {
  RunSpec spec;
  std::string setup;
  RunState state = RunState::pending;
  std::optional<ClaimInfo> claim;  // running or stale: who holds it
  std::int64_t epochs_done = 0, epochs = 0;
  bool has_result = false;         // a result file exists
  bool has_checkpoint = false;     // training resumes from it
  double accuracy = NAN;           // mean benchmark accuracy (0..1) at the last evaluated epoch
  double seconds_per_epoch = NAN;  // from the result file's wall time
  std::string failure_reason;
};

struct GridStanding {
  std::string experiment, output;
  double stale_after = 0;
  std::vector<RunStanding> runs;  // in grid order
  // Seconds until every unfinished run is complete, at the present number of running processes
  // (at least one) and each setup's time per epoch so far (else the grid's); NaN when no epoch
  // has been timed yet, 0 when nothing is left.
  double eta_seconds = NAN;

  std::size_t count(RunState s) const;
  bool all_complete() const { return count(RunState::complete) == runs.size(); }
};

// Every run of `e`'s grid in the results folder `output` (not e.output, which is relative to
// wherever the grid was started).
GridStanding grid_standing(const Experiment& e, const std::string& output,
                           const ClaimFolder& claims);

// The grid a results folder belongs to, parsed from the resolved experiment its result files
// record (the one most of them share). Throws ConfigError when no result file records one.
Experiment experiment_of_results(const std::string& folder);

}  // namespace flatface
