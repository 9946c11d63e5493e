// distributed/: the ranks that train one run together. The communicator (this file): one
// process is rank 0 of a world of 1 (single_process()), so the code that trains needs no branch
// for it (an all-reduce there is the identity, rank 0 leads and no one waits); a data-parallel run
// gets a C10dCommunicator (c10d_communicator.hpp: TCPStore rendezvous, Gloo or NCCL, timeouts and
// heartbeats of ours). Also the launch variables of torchrun and Slurm (launch_env.hpp), ranks
// started on this machine (local_ranks.hpp) and model broadcast and agreement (model_sync.hpp).
// The SDK's Collectives, which heads and strategies receive through HeadArgs and StepContext, are
// the part of the Communicator a plugin may use. A leaf of the runtime: it includes no other folder.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "flatface/collectives.hpp"
#include "flatface/options.hpp"

namespace flatface::distributed {

// A rank of the run died or stopped answering. The run's files are as the last completed write
// left them (rank 0 writes atomically), so the run resumes: it is not a failure of the run.
class RankLostError : public RuntimeError {
 public:
  using RuntimeError::RuntimeError;
};

class Communicator : public Collectives {
 public:
  virtual int rank() const = 0;
  // Sums each tensor over the ranks, in place (Collectives::all_reduce_sum).
  // Every rank's tensors become rank 0's.
  virtual void broadcast_from_rank0(const std::vector<at::Tensor>& tensors) = 0;
  // True on every rank when `flag` is true on any.
  virtual bool any(bool flag) = 0;
  // Seconds this rank has spent inside all_reduce_sum() (waiting for the slowest rank included):
  // the cost of data parallelism beside the time of the steps.
  virtual double all_reduce_seconds() const = 0;

  // Rank 0 publishes a value under `key` (unique within the job); the others wait for it as long
  // as rank 0 lives (rank 0 may be evaluating for longer than a collective's timeout).
  virtual void publish(const std::string& key, const std::string& value) = 0;
  virtual std::string await(const std::string& key) = 0;
  // Every rank waits here until all have arrived, for as long as all are alive.
  virtual void rendezvous(const std::string& name) = 0;
};

// One process alone: rank 0 of 1. Collectives are the identity, nothing is published to anyone,
// and there is no other rank to wait for or on.
class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void all_reduce_sum(const std::vector<at::Tensor>&) override {}
  void broadcast_from_rank0(const std::vector<at::Tensor>&) override {}
  bool any(bool flag) override { return flag; }
  double all_reduce_seconds() const override { return 0; }
  void publish(const std::string&, const std::string&) override {}
  // Only the ranks after 0 wait for rank 0's word: a world of 1 has none.
  std::string await(const std::string& key) override;
  void rendezvous(const std::string&) override {}
};

// The one SingleProcess (it holds no state): the communicator of every run without ranks.
Communicator& single_process();

}  // namespace flatface::distributed
