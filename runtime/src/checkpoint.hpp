// Per-epoch checkpoints of a run: everything needed to continue it bit-exactly on the CPU.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "experiment.hpp"
#include "flatface/backbone.hpp"
#include "registry.hpp"

namespace flatface {

// A backbone rebuilt from a checkpoint: the experiment it came from and its trained weights.
struct CheckpointModel {
  Experiment experiment;  // parsed from the resolved TOML stored in the checkpoint
  std::string run_id;
  std::int64_t epoch = 0;  // epochs completed
  std::shared_ptr<Backbone> backbone;
};

// Loads only what evaluation and export need. Throws ConfigError/RuntimeError naming the file.
CheckpointModel load_checkpoint_model(const Registry& registry, const std::string& path);

}  // namespace flatface
