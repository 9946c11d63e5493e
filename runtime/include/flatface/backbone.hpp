// A backbone maps images [N,3,H,W] (float, normalised as its InputFormat says: insightface's
// (x/255 − 0.5)/0.5 in RGB by default) to unnormalised embeddings [N,D].
#pragma once

#include <torch/nn/module.h>

#include <array>
#include <cstdint>
#include <memory>

#include "flatface/options.hpp"

namespace flatface {

// How decoded 8-bit RGB images become a backbone's input: the order of the three input channels
// and their normalisation x_c = (v_c / 255 − mean_c) / std_c, with mean and std given in the
// network's channel order (as torchvision's Normalize). insightface's models take RGB with
// mean = std = 0.5; AdaFace's released models take BGR with the same normalisation. The host
// reads it from the backbone table (`channels = "rgb" | "bgr"`, `mean`, `std`) and applies it
// when it builds batches for training, evaluation and embedding; plugins never see those keys.
struct InputFormat {
  bool bgr = false;
  std::array<float, 3> mean{0.5f, 0.5f, 0.5f};
  std::array<float, 3> std{0.5f, 0.5f, 0.5f};
};

class Backbone : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& images) = 0;
  virtual std::int64_t embedding_dim() const = 0;
  // Square input side the backbone was built for (112, 64, 56, ...).
  virtual std::int64_t input_size() const = 0;

  const InputFormat& input_format() const { return input_format_; }
  void set_input_format(const InputFormat& format) { input_format_ = format; }

 private:
  InputFormat input_format_;
};

struct BackboneArgs {
  Options options;  // the [model] backbone table, less `plugin` and the InputFormat keys
};

using BackboneFactory = std::shared_ptr<Backbone> (*)(const BackboneArgs&);

}  // namespace flatface
