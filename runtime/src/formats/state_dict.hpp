// formats/: files read and written without Python and without executing anything: torch.save
// state dicts (this file, torch_file.hpp, ordered_dict_pickle.hpp, pickle.hpp), and the
// implementations of the SDK's formats (runtime/include/flatface/formats/: RecordIO, .bin pairs,
// image folders, LFW pairs, image codecs). A leaf of the runtime: it includes no other folder.
//
// Module weights as a flat name -> tensor dictionary, and files of such dictionaries that Python
// reads with torch.load and writes with torch.save.
#pragma once

#include <ATen/core/Dict.h>
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <string>

namespace flatface {

using TensorDict = c10::Dict<std::string, at::Tensor>;

// Parameters and buffers under their full dotted names ("layer1.0.bn1.running_mean"), in
// PyTorch's order: each module's own parameters, then its buffers, then its children.
// The tensors share storage with the module.
TensorDict state_dict(const torch::nn::Module& module);

// Copies every entry into the module. Strict: missing, unexpected and shape-mismatched keys are a
// ConfigError naming `source` (a file, a checkpoint) and the first few keys of each kind.
void load_state_dict(torch::nn::Module& module, const TensorDict& dict, const std::string& source);

// A torch.load-able file (zip + pickle of a dict of CPU tensors). Written to a temporary name
// and renamed, so `path` is always either the old file or the complete new one.
void save_tensor_dict(const std::string& path, const TensorDict& dict);

// Reads save_tensor_dict's files and Python's torch.save(dict_of_tensors), including a module's
// state_dict() (an OrderedDict), in the zip format and in the legacy one. Tensors are on the CPU.
// Throws RuntimeError naming the path on anything else.
TensorDict load_tensor_dict(const std::string& path);

// Which entries of a weights file are the network's: published checkpoints wrap the state dict
// (PyTorch Lightning under 'state_dict', with names "model.<name>" in AdaFace's; insightface's
// training checkpoints under 'state_dict_backbone').
struct WeightsSelection {
  // Entries whose names start with it, the prefix removed; the others are left out. Empty: all.
  std::string prefix;
};

// The state dict in `path`: the file's dict of tensors itself, or the dict under 'state_dict' or
// 'state_dict_backbone' of a checkpoint, narrowed to `selection.prefix`. RuntimeError naming the
// path for a file that holds no such dict, ConfigError when no entry has the prefix.
TensorDict load_weights_dict(const std::string& path, const WeightsSelection& selection = {});

// load_weights_dict + load_state_dict: weights such as insightface's backbone.pth or AdaFace's
// released .ckpt (prefix "model.") into `module`.
void load_weights(torch::nn::Module& module, const std::string& path,
                  const WeightsSelection& selection = {});

}  // namespace flatface
