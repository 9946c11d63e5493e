// What `flatface analyze` measures and how: the [analysis] table of an experiment file, or the
// --settings table of the command. Every key has a default; an unknown key is an error naming it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "flatface/options.hpp"

namespace flatface {

struct AnalysisSettings {
  // The loss: L_margin on `batches` fixed training batches of `batch_size` (0: the experiment's
  // train.batch_size), drawn in the order of `seed`; BN in eval mode (running statistics), or
  // "train" (batch statistics).
  std::int64_t batches = 4;
  std::int64_t batch_size = 0;
  std::int64_t seed = 0;
  std::string batch_norm = "eval";
  // Hessian: top_k eigenvalues by power iteration (0: none), PyHessian's stopping rule.
  std::int64_t top_k = 1;
  double tolerance = 1e-3;
  std::int64_t max_iterations = 100;
  // Hutchinson trace: up to trace_samples Rademacher vectors (0: none), stopping rule as above.
  std::int64_t trace_samples = 100;
  double trace_tolerance = 1e-3;
  // Sharpness in a ρ-ball: ρ = the run's own where it has one, else `rho`.
  std::optional<double> rho;  // given: used for every run
  double default_rho = 0.05;
  std::int64_t ascent_steps = 5;  // worst case (0 steps: the start u₀ only)
  double ascent_step = 1.0;       // a step's length as a fraction of ρ
  bool adaptive = true;           // also the ASAM-scaled worst case
  double eta = 0.01;              // T = |w| + η
  std::int64_t average_samples = 10;  // average case (0: none)
  // Landscapes along filter-normalised directions: α in [−range, range] at `landscape_points`
  // points (0: none), and a landscape_2d_points² plane (0: none).
  std::int64_t landscape_points = 21;
  double landscape_range = 1.0;
  std::int64_t landscape_2d_points = 0;

  // Every setting as text, for the attributes written with the results and for "analysed with
  // the same settings".
  std::map<std::string, std::string> as_attributes() const;
  std::string canonical() const;
};

// Reads and checks the table (check_all_used included): ConfigError naming the key and its place.
AnalysisSettings parse_analysis_settings(const Options& table);

}  // namespace flatface
