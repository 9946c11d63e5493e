// Collectives over the ranks that train one run together (data-parallel training), for plugins
// whose statistics span the global batch: AdaFace's running mean and std of the feature norms,
// AE-SAM's vote on a second pass. The host hands them to a head (HeadArgs::collectives) and to a
// strategy (StepContext::collectives()); one process alone is rank 0 of a world of 1, where they
// are the identity. Every rank must make the same calls in the same order.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace flatface {

class Collectives {
 public:
  virtual ~Collectives() = default;
  // The number of ranks training this run (1 in one process).
  virtual int world_size() const = 0;
  // Sums each tensor elementwise over the ranks, in place.
  virtual void all_reduce_sum(const std::vector<at::Tensor>& tensors) = 0;
};

// One process alone: a world of 1, where the sum over the ranks is the tensor itself. What a head
// or strategy gets outside training (evaluation, export, benchmarks, tests).
class OneProcess final : public Collectives {
 public:
  int world_size() const override { return 1; }
  void all_reduce_sum(const std::vector<at::Tensor>&) override {}
};

inline Collectives& one_process() {
  static OneProcess collectives;  // stateless: one instance serves every caller
  return collectives;
}

}  // namespace flatface
