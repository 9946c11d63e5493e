// Per-epoch checkpoints of a run: everything needed to continue it bit-exactly on the CPU.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <ATen/core/Dict.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <vector>

#include "experiment/experiment.hpp"
#include "flatface/backbone.hpp"
#include "plugin_host/registry.hpp"

namespace flatface {

// Where a run stands: everything besides the modules' and optimizer's tensors.
struct TrainingState {
  std::string experiment_toml;  // resolved TOML of the experiment
  std::string run_id;
  std::int64_t epoch = 0;          // completed epochs
  std::int64_t step_in_epoch = 0;  // batches done in the current epoch (non-zero after Ctrl-C)
  std::int64_t global_step = 0;
  double elapsed_seconds = 0;      // training wall time so far
  std::vector<double> accumulators;  // the current epoch's partial sums
  std::vector<at::Tensor> perturbation_state;  // Perturbation::state(), on the CPU once loaded
};

// Writes atomically (temporary name + rename). The optimizer's momentum buffers and the CPU (and
// CUDA) random generator states are included.
void save_checkpoint(const std::string& path, const TrainingState& state, torch::nn::Module& backbone,
                     torch::nn::Module& head, torch::optim::Optimizer& optimizer);
// Restores modules, optimizer and generators in place; returns the state.
TrainingState load_checkpoint(const std::string& path, torch::nn::Module& backbone,
                              torch::nn::Module& head, torch::optim::Optimizer& optimizer);

// One module's tensors ("backbone" or "head") as stored in a checkpoint.
c10::Dict<std::string, at::Tensor> load_tensor_dict_from_checkpoint(const std::string& path,
                                                                     const std::string& module);

// A backbone rebuilt from a checkpoint: the experiment it came from and its trained weights.
struct CheckpointModel {
  Experiment experiment;  // the stored resolved TOML, with the run's swept values in place
  std::string run_id;
  std::int64_t epoch = 0;  // epochs completed
  std::shared_ptr<Backbone> backbone;
};

// Loads only what evaluation and export need. Throws ConfigError/RuntimeError naming the file.
CheckpointModel load_checkpoint_model(const Registry& registry, const std::string& path);

}  // namespace flatface
