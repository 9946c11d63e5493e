// IResNet as in insightface `arcface_torch` (Deng et al., ArcFace; Duta et al., improved ResNet):
// pre-activation-style blocks BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN with a
// conv1x1+BN shortcut, four stages that each halve the resolution, and the "E" output head
// BN2d -> dropout -> FC -> BN1d. Parameter and buffer names equal insightface's, so state dicts
// move both ways.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include <cstdint>
#include <vector>

#include "flatface/backbone.hpp"

namespace flatface::iresnet {

struct Config {
  std::int64_t depth = 50;       // 18, 34, 50, 100 or 200
  std::int64_t embedding = 512;  // D
  double dropout = 0.0;          // before the FC
  std::int64_t input = 112;      // square input side
  std::int64_t width = 64;       // channels of stage 1; stages are width x 1, 2, 4, 8
  std::int64_t stem_stride = 1;  // 1 as in insightface; 2 quarters the work of small CPU models
  bool zero_init_residual = false;
};

// Blocks per stage for a supported depth; throws std::invalid_argument otherwise.
std::vector<std::int64_t> stage_blocks(std::int64_t depth);

// Side of the last feature map. A 3x3 conv with padding 1 and stride t maps s to
// floor((s - 1) / t) + 1; the stem uses `stem_stride`, each of the four stages stride 2
// (stem stride 1: 112 -> 7, 64 -> 4, 56 -> 4).
std::int64_t feature_side(std::int64_t input, std::int64_t stem_stride);

class IBasicBlockImpl : public torch::nn::Module {
 public:
  IBasicBlockImpl(std::int64_t in_channels, std::int64_t channels, std::int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::BatchNorm2d bn1{nullptr};
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn2{nullptr};
  torch::nn::PReLU prelu{nullptr};
  torch::nn::Conv2d conv2{nullptr};
  torch::nn::BatchNorm2d bn3{nullptr};
  torch::nn::Sequential downsample{nullptr};  // conv1x1(stride) + BN, or none
};
TORCH_MODULE(IBasicBlock);

class IResNet : public Backbone {
 public:
  explicit IResNet(const Config& config);

  torch::Tensor forward(const torch::Tensor& images) override;
  std::int64_t embedding_dim() const override { return config_.embedding; }
  std::int64_t input_size() const override { return config_.input; }
  const Config& config() const { return config_; }

 private:
  torch::nn::Sequential make_stage(std::int64_t& in_channels, std::int64_t channels,
                                   std::int64_t blocks);
  void initialise();

  Config config_;
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  torch::nn::PReLU prelu{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
  torch::nn::BatchNorm2d bn2{nullptr};
  torch::nn::Dropout dropout{nullptr};
  torch::nn::Linear fc{nullptr};
  torch::nn::BatchNorm1d features{nullptr};
};

}  // namespace flatface::iresnet
