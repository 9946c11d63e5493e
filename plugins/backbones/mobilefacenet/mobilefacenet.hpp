// MobileFaceNet as in insightface `arcface_torch` (backbones/mobilefacenet.py, after cavaface;
// Chen et al., MobileFaceNets): a stride-2 3x3 stem, four stages of inverted bottlenecks
// (1x1 expand -> depthwise 3x3 -> 1x1 linear project, residual when the shape stays), a 1x1
// `conv_sep` to 512 channels and the GDC output: a depthwise conv over the whole last feature
// map, flatten, a bias-free linear layer and BN1d. Parameter and buffer names equal
// insightface's, so their backbone.pth loads and our state dicts load into their get_mbf.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>

#include <cstdint>
#include <vector>

#include "flatface/backbone.hpp"

namespace flatface::mobilefacenet {

struct Config {
  // Residual bottlenecks per stage, after the downsampling bottleneck that opens stages 2-4;
  // blocks[0] == 1 makes stage 1 one 3x3 ConvBlock in 64 groups instead, as insightface does.
  std::vector<std::int64_t> blocks{1, 4, 6, 2};
  std::int64_t scale = 2;        // stages have 64·scale and 128·scale channels
  std::int64_t embedding = 512;  // D
  std::int64_t input = 112;      // square input side; any side >= 1 (see feature_side)
};

// Side of the last feature map, which is also the GDC's depthwise kernel. Four 3x3 convs with
// padding 1 and stride 2 (the stem and stages 2-4) each map s to floor((s - 1) / 2) + 1 =
// ceil(s / 2), so the side is ceil(input / 16): 112 -> 7 (insightface's fixed kernel), 56 -> 4.
// Every input side >= 1 works: the kernel always covers the whole map, leaving 1x1 x 512.
std::int64_t feature_side(std::int64_t input);

// Conv (no bias) -> BN -> per-channel PReLU, under `layers.{0,1,2}`.
class ConvBlockImpl : public torch::nn::Module {
 public:
  ConvBlockImpl(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride,
                std::int64_t padding, std::int64_t groups);
  torch::Tensor forward(const torch::Tensor& x) { return layers->forward(x); }

  torch::nn::Sequential layers{nullptr};
};
TORCH_MODULE(ConvBlock);

// Conv (no bias) -> BN, no activation, under `layers.{0,1}`.
class LinearBlockImpl : public torch::nn::Module {
 public:
  LinearBlockImpl(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t groups);
  torch::Tensor forward(const torch::Tensor& x) { return layers->forward(x); }

  torch::nn::Sequential layers{nullptr};
};
TORCH_MODULE(LinearBlock);

// Inverted bottleneck in -> width -> out: ConvBlock 1x1, depthwise ConvBlock 3x3 (stride), and
// LinearBlock 1x1. insightface calls `width` "groups": it is the expanded width, and the 3x3 conv
// is depthwise over it.
class DepthWiseImpl : public torch::nn::Module {
 public:
  DepthWiseImpl(std::int64_t in, std::int64_t out, std::int64_t width, std::int64_t stride,
                bool residual);
  torch::Tensor forward(const torch::Tensor& x);

  bool residual;
  torch::nn::Sequential layers{nullptr};
};
TORCH_MODULE(DepthWise);

// `blocks` residual bottlenecks c -> width -> c at stride 1, under `layers.<i>`.
class ResidualImpl : public torch::nn::Module {
 public:
  ResidualImpl(std::int64_t channels, std::int64_t blocks, std::int64_t width);
  torch::Tensor forward(const torch::Tensor& x) { return layers->forward(x); }

  torch::nn::Sequential layers{nullptr};
};
TORCH_MODULE(Residual);

// Global depthwise conv: a `side` x `side` depthwise LinearBlock over 512 channels (one 1x1
// output), flatten, a bias-free linear layer to D and BN1d, under `layers.{0,2,3}` (1 is the
// flatten, which holds nothing).
class GDCImpl : public torch::nn::Module {
 public:
  GDCImpl(std::int64_t side, std::int64_t embedding);
  torch::Tensor forward(const torch::Tensor& x) { return layers->forward(x); }

  torch::nn::Sequential layers{nullptr};
};
TORCH_MODULE(GDC);

class MobileFaceNet : public Backbone {
 public:
  explicit MobileFaceNet(const Config& config);

  torch::Tensor forward(const torch::Tensor& images) override;
  std::int64_t embedding_dim() const override { return config_.embedding; }
  std::int64_t input_size() const override { return config_.input; }
  const Config& config() const { return config_; }

 private:
  void initialise();

  Config config_;
  torch::nn::Sequential layers{nullptr};  // stem and the four stages
  ConvBlock conv_sep{nullptr};            // 1x1 to 512 channels
  GDC features{nullptr};
};

}  // namespace flatface::mobilefacenet
