// The learning-rate schedule: optional linear warm-up, then multi-step decay at epoch milestones.
#pragma once

#include "experiment/experiment.hpp"

namespace flatface {

// `epoch` is 0-based; `step` counts batches within it. Milestones follow PyTorch's MultiStepLR
// stepped once per epoch: with milestones [28, 38, 46], epochs 0..27 use lr, epoch 28 uses lr*gamma.
double learning_rate(const TrainSettings& t, std::int64_t epoch, std::int64_t step,
                     std::int64_t steps_per_epoch);

}  // namespace flatface
