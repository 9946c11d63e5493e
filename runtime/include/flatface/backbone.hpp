// A backbone maps images [N,3,H,W] (float, normalised to [-1,1]) to unnormalised embeddings [N,D].
#pragma once

#include <torch/nn/module.h>

#include <cstdint>
#include <memory>

#include "flatface/options.hpp"

namespace flatface {

class Backbone : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& images) = 0;
  virtual std::int64_t embedding_dim() const = 0;
  // Square input side the backbone was built for (112, 64, 56, ...).
  virtual std::int64_t input_size() const = 0;
};

struct BackboneArgs {
  Options options;  // the [model] backbone table, less `plugin`
};

using BackboneFactory = std::shared_ptr<Backbone> (*)(const BackboneArgs&);

}  // namespace flatface
