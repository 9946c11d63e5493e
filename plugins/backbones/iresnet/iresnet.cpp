#include "iresnet.hpp"

#include <ATen/ops/flatten.h>
#include <torch/nn/init.h>

#include <stdexcept>
#include <string>

namespace flatface::iresnet {

namespace {

// insightface's normalisation layers: eps 1e-5 and PyTorch's default momentum 0.1.
constexpr double kBnEps = 1e-5;
constexpr double kBnMomentum = 0.1;

torch::nn::Conv2d conv3x3(std::int64_t in, std::int64_t out, std::int64_t stride) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false));
}

torch::nn::Conv2d conv1x1(std::int64_t in, std::int64_t out, std::int64_t stride) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).stride(stride).bias(false));
}

torch::nn::BatchNorm2d batch_norm(std::int64_t channels) {
  return torch::nn::BatchNorm2d(
      torch::nn::BatchNorm2dOptions(channels).eps(kBnEps).momentum(kBnMomentum));
}

}  // namespace

std::vector<std::int64_t> stage_blocks(std::int64_t depth) {
  switch (depth) {
    case 18:
      return {2, 2, 2, 2};
    case 34:
      return {3, 4, 6, 3};
    case 50:
      return {3, 4, 14, 3};
    case 100:
      return {3, 13, 30, 3};
    case 200:
      return {6, 26, 60, 6};
    default:
      throw std::invalid_argument("depth must be one of 18, 34, 50, 100, 200 (got " +
                                  std::to_string(depth) + ")");
  }
}

std::int64_t feature_side(std::int64_t input, std::int64_t stem_stride) {
  std::int64_t side = (input - 1) / stem_stride + 1;
  for (int stage = 0; stage < 4; ++stage) side = (side - 1) / 2 + 1;
  return side;
}

IBasicBlockImpl::IBasicBlockImpl(std::int64_t in_channels, std::int64_t channels,
                                 std::int64_t stride) {
  // Registration order equals insightface's, so state dicts list keys in the same order.
  bn1 = register_module("bn1", batch_norm(in_channels));
  conv1 = register_module("conv1", conv3x3(in_channels, channels, 1));
  bn2 = register_module("bn2", batch_norm(channels));
  prelu = register_module("prelu",
                          torch::nn::PReLU(torch::nn::PReLUOptions().num_parameters(channels)));
  conv2 = register_module("conv2", conv3x3(channels, channels, stride));
  bn3 = register_module("bn3", batch_norm(channels));
  if (stride != 1 || in_channels != channels) {
    downsample = register_module(
        "downsample",
        torch::nn::Sequential(conv1x1(in_channels, channels, stride), batch_norm(channels)));
  }
}

torch::Tensor IBasicBlockImpl::forward(const torch::Tensor& x) {
  auto out = bn3(conv2(prelu(bn2(conv1(bn1(x))))));
  auto shortcut = downsample ? downsample->forward(x) : x;
  return out + shortcut;
}

IResNet::IResNet(const Config& config) : config_(config) {
  const auto blocks = stage_blocks(config.depth);
  if (config.width < 1) throw std::invalid_argument("width must be at least 1");
  if (config.embedding < 1) throw std::invalid_argument("embedding must be at least 1");
  if (config.input < 8) throw std::invalid_argument("input must be at least 8 pixels");
  if (config.stem_stride != 1 && config.stem_stride != 2) {
    throw std::invalid_argument("stem_stride must be 1 or 2");
  }
  if (!(config.dropout >= 0.0 && config.dropout < 1.0)) {
    throw std::invalid_argument("dropout must be in [0, 1)");
  }
  const std::int64_t w = config.width;

  conv1 = register_module("conv1", conv3x3(3, w, config.stem_stride));
  bn1 = register_module("bn1", batch_norm(w));
  prelu = register_module("prelu", torch::nn::PReLU(torch::nn::PReLUOptions().num_parameters(w)));
  std::int64_t channels = w;
  layer1 = register_module("layer1", make_stage(channels, w, blocks[0]));
  layer2 = register_module("layer2", make_stage(channels, 2 * w, blocks[1]));
  layer3 = register_module("layer3", make_stage(channels, 4 * w, blocks[2]));
  layer4 = register_module("layer4", make_stage(channels, 8 * w, blocks[3]));
  bn2 = register_module("bn2", batch_norm(channels));
  dropout = register_module("dropout", torch::nn::Dropout(config.dropout));
  const std::int64_t side = feature_side(config.input, config.stem_stride);
  fc = register_module("fc", torch::nn::Linear(channels * side * side, config.embedding));
  features = register_module(
      "features",
      torch::nn::BatchNorm1d(
          torch::nn::BatchNorm1dOptions(config.embedding).eps(kBnEps).momentum(kBnMomentum)));
  initialise();
}

torch::nn::Sequential IResNet::make_stage(std::int64_t& in_channels, std::int64_t channels,
                                          std::int64_t blocks) {
  torch::nn::Sequential stage;
  // Every stage halves the resolution in its first block's second conv.
  stage->push_back(IBasicBlock(in_channels, channels, 2));
  in_channels = channels;
  for (std::int64_t i = 1; i < blocks; ++i) stage->push_back(IBasicBlock(channels, channels, 1));
  return stage;
}

void IResNet::initialise() {
  torch::NoGradGuard no_grad;
  for (const auto& module : modules(/*include_self=*/false)) {
    if (auto* conv = module->as<torch::nn::Conv2d>()) {
      torch::nn::init::normal_(conv->weight, 0.0, 0.1);
    } else if (auto* bn = module->as<torch::nn::BatchNorm2d>()) {
      torch::nn::init::constant_(bn->weight, 1.0);
      torch::nn::init::constant_(bn->bias, 0.0);
    }
  }
  // insightface's option zeroes each block's bn2 (the BN before the PReLU); off by default.
  if (config_.zero_init_residual) {
    for (const auto& module : modules(false)) {
      if (auto* block = module->as<IBasicBlockImpl>()) torch::nn::init::zeros_(block->bn2->weight);
    }
  }
  // The embedding BN only centres and shifts: its scale stays 1.
  torch::nn::init::constant_(features->weight, 1.0);
  features->weight.set_requires_grad(false);
}

torch::Tensor IResNet::forward(const torch::Tensor& images) {
  if (images.dim() != 4 || images.size(1) != 3 || images.size(2) != config_.input ||
      images.size(3) != config_.input) {
    throw RuntimeError("iresnet: built for images [N,3," + std::to_string(config_.input) + "," +
                       std::to_string(config_.input) + "], got " + c10::str(images.sizes()));
  }
  auto x = prelu(bn1(conv1(images)));
  x = layer4->forward(layer3->forward(layer2->forward(layer1->forward(x))));
  x = at::flatten(bn2(x), 1);
  return features(fc(dropout(x)));
}

}  // namespace flatface::iresnet
