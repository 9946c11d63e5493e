// Collectives over the ranks that train one run together (data-parallel training), for plugins
// whose statistics span the global batch: AdaFace's running mean and std of the feature norms.
// Implemented by the host; in one process they are the identity. Every rank must make the same
// calls in the same order.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace flatface {

// The number of ranks training this run (1 in one process).
int run_world_size();

// Sums each tensor elementwise over the ranks, in place.
void all_reduce_sum(const std::vector<at::Tensor>& tensors);

}  // namespace flatface
