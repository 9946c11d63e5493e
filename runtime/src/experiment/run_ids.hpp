// Run ids (internal to experiment/): a run's resolved spec as text, and the short stable hash of
// it that names the run's files. The text's form is frozen: a change would rename every result.
#pragma once

#include <cstdint>
#include <string>

#include "experiment/experiment.hpp"

namespace flatface {

// The text a run's id is hashed from: `run_view` is the experiment as the run sees it
// (run_experiment()), `perturbation` its perturbation options (perturbation_options()).
std::string run_canonical(const Experiment& run_view, std::size_t setup,
                          const Options& perturbation, std::int64_t seed);

// The first 10 hex digits of the 64-bit FNV-1a hash of `canonical`.
std::string run_id(const std::string& canonical);

}  // namespace flatface
