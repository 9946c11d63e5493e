#include "distributed/model_sync.hpp"

#include <ATen/core/grad_mode.h>

namespace flatface::distributed {

void broadcast_modules(Communicator& ranks, const std::vector<torch::nn::Module*>& modules) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> state;
  for (auto* m : modules) {
    for (const auto& p : m->parameters()) state.push_back(p.detach());
    for (const auto& b : m->buffers()) state.push_back(b);
  }
  ranks.broadcast_from_rank0(state);
}

void rank0_finished(Communicator& ranks, const std::string& key) {
  if (ranks.rank() == 0)
    ranks.publish(key, "done");
  else
    ranks.await(key);
}

}  // namespace flatface::distributed
