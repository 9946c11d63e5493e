#include "distributed/model_sync.hpp"

#include <ATen/core/grad_mode.h>

namespace flatface::distributed {

void broadcast_modules(Communicator* ranks, const std::vector<torch::nn::Module*>& modules) {
  if (!ranks) return;
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> state;
  for (auto* m : modules) {
    for (const auto& p : m->parameters()) state.push_back(p.detach());
    for (const auto& b : m->buffers()) state.push_back(b);
  }
  ranks->broadcast_from_rank0(state);
}

bool agree_to_stop(Communicator* ranks, bool stop_here) {
  return ranks ? ranks->any(stop_here) : stop_here;
}

void LeaderGate::pass(const std::string& what) {
  if (!ranks_) return;
  const std::string key = scope_ + "/" + std::to_string(sequence_++) + "/" + what;
  if (leader())
    ranks_->publish(key, "done");
  else
    ranks_->await(key);
}

}  // namespace flatface::distributed
