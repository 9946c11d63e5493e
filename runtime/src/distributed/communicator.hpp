// distributed/: data-parallel training of one run on several processes. The communicator (this
// file), the launch variables of torchrun and Slurm (launch_env.hpp), ranks started on this
// machine (local_ranks.hpp), model broadcast and agreement (model_sync.hpp), and the SDK's
// collectives. A leaf of the runtime: it includes no other folder.
//
// The ranks of one data-parallel run, over c10d: rendezvous through a TCPStore (rank 0 serves
// it), collectives through ProcessGroupGloo on the CPU or ProcessGroupNCCL on CUDA where the
// libtorch has it, every collective bounded by a timeout of ours (c10d's default is 30 minutes),
// and a heartbeat per rank in the store, so that a failed collective names the rank that was lost.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "distributed/launch_env.hpp"
#include "flatface/options.hpp"

namespace flatface::distributed {

// A rank of the run died or stopped answering. The run's files are as the last completed write
// left them (rank 0 writes atomically), so the run resumes: it is not a failure of the run.
class RankLostError : public RuntimeError {
 public:
  using RuntimeError::RuntimeError;
};

// The collective timeout when none is given (--dist-timeout): long enough for a slow step of a
// large model, short enough that a lost rank stops the job in minutes, not c10d's half hour.
inline constexpr std::chrono::seconds kDefaultCollectiveTimeout{120};

class Communicator {
 public:
  // Blocks until every rank has joined (or `timeout` passes: RankLostError naming the missing).
  Communicator(const LaunchEnv& env, const c10::Device& device, std::chrono::milliseconds timeout);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  const LaunchEnv& env() const { return env_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // Sums each tensor over the ranks, in place: tensors of one dtype and device travel in flat
  // buckets of up to 25 MiB (one all-reduce per bucket, never one per tensor).
  void all_reduce_sum(const std::vector<at::Tensor>& tensors);
  // Every rank's tensors become rank 0's.
  void broadcast_from_rank0(const std::vector<at::Tensor>& tensors);
  // True on every rank when `flag` is true on any.
  bool any(bool flag);
  // Seconds this rank has spent inside all_reduce_sum() (waiting for the slowest rank included):
  // the cost of data parallelism beside the time of the steps.
  double all_reduce_seconds() const { return all_reduce_seconds_; }

  // Rank 0 publishes a value under `key` (unique within the job); the others wait for it as long
  // as rank 0's heartbeat goes on (rank 0 may be evaluating for longer than the timeout).
  void publish(const std::string& key, const std::string& value);
  std::string await(const std::string& key);
  // Every rank waits here until all have arrived, for as long as all are alive.
  void rendezvous(const std::string& name);

 private:
  // Names the ranks whose heartbeat stopped and throws RankLostError.
  [[noreturn]] void lost(const std::string& during, const std::string& detail);

  LaunchEnv env_;
  std::chrono::milliseconds timeout_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool broken_ = false;
  double all_reduce_seconds_ = 0;  // a rank was lost: the destructor does not wait for the others
};

}  // namespace flatface::distributed
