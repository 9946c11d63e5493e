// AdaFace's IR backbones (Kim et al., AdaFace, CVPR 2022; github.com/mk-minchul/AdaFace, net.py):
// IR-18/34/50/100 with basic blocks BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN,
// IR-152/200 with bottleneck blocks, each optionally with a squeeze-and-excitation module (IR-SE).
// The shortcut is a conv1x1+BN where the channel count changes and a strided identity elsewhere;
// the output layer is BN2d -> dropout -> flatten -> FC -> BN1d without affine parameters. Parameter
// and buffer names, and their order, equal AdaFace's (`input_layer.*`, `body.<i>.res_layer.<j>.*`,
// `body.<i>.shortcut_layer.*`, `output_layer.*`), so their checkpoints load after dropping the
// Lightning prefix `model.`, and ours load into their `net.build_model(...)`.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

#include <cstdint>
#include <vector>

#include "flatface/backbone.hpp"

namespace flatface::ir {

struct Config {
  std::int64_t depth = 50;       // 18, 34, 50, 100 (AdaFace's "ir_101" is 100), 152 or 200
  bool se = false;               // IR-SE: a squeeze-and-excitation module in every block
  std::int64_t input = 112;      // square input side: 112 and 224 as published, or smaller
  std::int64_t embedding = 512;  // D
  double dropout = 0.4;          // before the FC, as in AdaFace
  std::int64_t width = 64;       // stem; stages width x 1, 2, 4, 8 (x 4 more in bottlenecks)
};

// AdaFace's get_blocks: units per stage and the stage's output channels (theirs at width 64).
struct Stage {
  std::int64_t units;
  std::int64_t channels;
};
// Throws std::invalid_argument for a depth AdaFace does not build.
std::vector<Stage> stages_of(std::int64_t depth, std::int64_t width);

// Depths from 152 up use bottleneck blocks (net.py: num_layers <= 100 -> basic blocks).
inline bool uses_bottleneck(std::int64_t depth) {
  return depth >= 152;
}

// Side of the last feature map: each stage's first unit has stride 2 and maps s to
// floor((s - 1) / 2) + 1 (112 -> 7, 224 -> 14, 56 -> 4).
std::int64_t feature_side(std::int64_t input);

// SEModule: x * sigmoid(fc2(relu(fc1(avgpool(x))))), 1x1 convs without bias, reduction 16.
class SEModuleImpl : public torch::nn::Module {
 public:
  SEModuleImpl(std::int64_t channels, std::int64_t reduction);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d fc1{nullptr};
  torch::nn::Conv2d fc2{nullptr};
};
TORCH_MODULE(SEModule);

// One unit: BasicBlockIR, BottleneckIR, or their SE variants (the SE module appended to
// res_layer as `se_block`). The stride sits on the residual branch's last conv.
class UnitImpl : public torch::nn::Module {
 public:
  UnitImpl(std::int64_t in_channels, std::int64_t channels, std::int64_t stride, bool bottleneck,
           bool se);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Sequential shortcut_layer{nullptr};  // conv1x1(stride) + BN, or none
  torch::nn::Sequential res_layer{nullptr};

 private:
  std::int64_t stride_;
};
TORCH_MODULE(Unit);

class IR : public Backbone {
 public:
  explicit IR(const Config& config);

  torch::Tensor forward(const torch::Tensor& images) override;
  std::int64_t embedding_dim() const override { return config_.embedding; }
  std::int64_t input_size() const override { return config_.input; }
  const Config& config() const { return config_; }

 private:
  void initialise();

  Config config_;
  // Registered in AdaFace's order (input, output, body), which is their state dict's order.
  torch::nn::Sequential input_layer{nullptr};
  torch::nn::Sequential output_layer{nullptr};
  torch::nn::Sequential body{nullptr};
};

}  // namespace flatface::ir
