// What the trainer does differently on data-parallel ranks, beside the step itself: start every
// rank from rank 0's weights, agree on stopping, and let rank 0 alone evaluate and write while
// the others wait for it. Every function is a no-op (or the identity) without ranks.
#pragma once

#include <torch/nn/module.h>

#include <string>
#include <vector>

#include "distributed/communicator.hpp"

namespace flatface::distributed {

// Parameters and buffers of `modules` (BN statistics, AdaFace's μ, σ) become rank 0's.
void broadcast_modules(Communicator* ranks, const std::vector<torch::nn::Module*>& modules);

// Whether to stop after this step: on every rank when any rank wants to (Ctrl-C reaches the ranks
// of one job at different steps).
bool agree_to_stop(Communicator* ranks, bool stop_here);

// Rank 0 says it has finished the work named `what` (evaluating and saving an epoch); the other
// ranks wait for it, for as long as rank 0 lives. Keys are unique per call sequence.
class LeaderGate {
 public:
  explicit LeaderGate(Communicator* ranks, std::string scope) : ranks_(ranks), scope_(std::move(scope)) {}
  bool leader() const { return !ranks_ || ranks_->rank() == 0; }
  void pass(const std::string& what);  // rank 0: done; others: wait for it

 private:
  Communicator* ranks_;
  std::string scope_;
  long sequence_ = 0;
};

}  // namespace flatface::distributed
