// The ranks of one data-parallel run, over c10d: rendezvous through a TCPStore (rank 0 serves
// it), collectives through ProcessGroupGloo on the CPU or ProcessGroupNCCL on CUDA where the
// libtorch has it, every collective bounded by a timeout of ours (c10d's default is 30 minutes),
// and a heartbeat per rank in the store, so that a failed collective names the rank that was lost
// (RankLostError).
#pragma once

#include <c10/core/Device.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "distributed/communicator.hpp"
#include "distributed/launch_env.hpp"

namespace flatface::distributed {

// The collective timeout when none is given (--dist-timeout): long enough for a slow step of a
// large model, short enough that a lost rank stops the job in minutes, not c10d's half hour.
inline constexpr std::chrono::seconds kDefaultCollectiveTimeout{120};

class C10dCommunicator final : public Communicator {
 public:
  // Blocks until every rank has joined (or `timeout` passes: RankLostError naming the missing).
  C10dCommunicator(const LaunchEnv& env, const c10::Device& device,
                   std::chrono::milliseconds timeout);
  ~C10dCommunicator() override;
  C10dCommunicator(const C10dCommunicator&) = delete;
  C10dCommunicator& operator=(const C10dCommunicator&) = delete;

  const LaunchEnv& env() const { return env_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  int rank() const override { return env_.rank; }
  int world_size() const override { return env_.world_size; }
  // Tensors of one dtype and device travel in flat buckets of up to 25 MiB (one all-reduce per
  // bucket, never one per tensor).
  void all_reduce_sum(const std::vector<at::Tensor>& tensors) override;
  void broadcast_from_rank0(const std::vector<at::Tensor>& tensors) override;
  bool any(bool flag) override;
  double all_reduce_seconds() const override { return all_reduce_seconds_; }
  // await() waits for as long as rank 0's heartbeat in the store goes on.
  void publish(const std::string& key, const std::string& value) override;
  std::string await(const std::string& key) override;
  void rendezvous(const std::string& name) override;

 private:
  // Names the ranks whose heartbeat stopped and throws RankLostError.
  [[noreturn]] void lost(const std::string& during, const std::string& detail);

  LaunchEnv env_;
  std::chrono::milliseconds timeout_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool broken_ = false;  // a rank was lost: the destructor does not wait for the others
  double all_reduce_seconds_ = 0;
};

}  // namespace flatface::distributed
