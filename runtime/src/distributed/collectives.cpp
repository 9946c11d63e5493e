#include "flatface/collectives.hpp"

#include "distributed/run_ranks.hpp"

namespace flatface {

namespace distributed {
namespace {
Communicator* g_run_ranks = nullptr;  // one run trains at a time in a process
}  // namespace

RunRanks::RunRanks(Communicator* ranks) : previous_(g_run_ranks) { g_run_ranks = ranks; }
RunRanks::~RunRanks() { g_run_ranks = previous_; }
Communicator* run_ranks() { return g_run_ranks; }
}  // namespace distributed

int run_world_size() {
  auto* ranks = distributed::run_ranks();
  return ranks ? ranks->world_size() : 1;
}

void all_reduce_sum(const std::vector<at::Tensor>& tensors) {
  if (auto* ranks = distributed::run_ranks()) ranks->all_reduce_sum(tensors);
}

}  // namespace flatface
