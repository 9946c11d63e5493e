// What the trainer does on the ranks of a run, beside the step itself: start every rank from rank
// 0's weights, and let rank 0 alone evaluate and write while the others wait for it. In one
// process (rank 0 of 1) both are free.
#pragma once

#include <torch/nn/module.h>

#include <string>
#include <vector>

#include "distributed/communicator.hpp"

namespace flatface::distributed {

// Parameters and buffers of `modules` (BN statistics, AdaFace's μ, σ) become rank 0's.
void broadcast_modules(Communicator& ranks, const std::vector<torch::nn::Module*>& modules);

// Rank 0 says it has finished the work named by `key` (evaluating and saving an epoch; unique
// within the job); the other ranks wait for it, for as long as rank 0 lives.
void rank0_finished(Communicator& ranks, const std::string& key);

}  // namespace flatface::distributed
