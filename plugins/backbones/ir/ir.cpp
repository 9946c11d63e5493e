#include "ir.hpp"

#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include <stdexcept>
#include <string>

namespace flatface::ir {

namespace {

// AdaFace's layers use PyTorch's defaults: BN eps 1e-5, momentum 0.1; PReLU slopes 0.25.
torch::nn::Conv2d conv(std::int64_t in, std::int64_t out, std::int64_t kernel,
                       std::int64_t stride) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

torch::nn::BatchNorm2d batch_norm(std::int64_t channels) {
  return torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(channels));
}

torch::nn::PReLU prelu(std::int64_t channels) {
  return torch::nn::PReLU(torch::nn::PReLUOptions().num_parameters(channels));
}

constexpr std::int64_t kSeReduction = 16;

}  // namespace

std::vector<Stage> stages_of(std::int64_t depth, std::int64_t width) {
  const std::int64_t w = width;
  switch (depth) {
    case 18:
      return {{2, w}, {2, 2 * w}, {2, 4 * w}, {2, 8 * w}};
    case 34:
      return {{3, w}, {4, 2 * w}, {6, 4 * w}, {3, 8 * w}};
    case 50:
      return {{3, w}, {4, 2 * w}, {14, 4 * w}, {3, 8 * w}};
    case 100:
    case 101:  // AdaFace's IR_101 builds num_layers 100
      return {{3, w}, {13, 2 * w}, {30, 4 * w}, {3, 8 * w}};
    case 152:
      return {{3, 4 * w}, {8, 8 * w}, {36, 16 * w}, {3, 32 * w}};
    case 200:
      return {{3, 4 * w}, {24, 8 * w}, {36, 16 * w}, {3, 32 * w}};
    default:
      throw std::invalid_argument("depth must be one of 18, 34, 50, 100 (or 101), 152, 200 (got " +
                                  std::to_string(depth) + ")");
  }
}

std::int64_t feature_side(std::int64_t input) {
  std::int64_t side = input;
  for (int stage = 0; stage < 4; ++stage) side = (side - 1) / 2 + 1;
  return side;
}

SEModuleImpl::SEModuleImpl(std::int64_t channels, std::int64_t reduction) {
  fc1 = register_module("fc1", conv(channels, channels / reduction, 1, 1));
  fc2 = register_module("fc2", conv(channels / reduction, channels, 1, 1));
}

torch::Tensor SEModuleImpl::forward(const torch::Tensor& x) {
  const auto squeeze = x.mean({2, 3}, /*keepdim=*/true);
  return x * fc2(fc1(squeeze).relu()).sigmoid();
}

UnitImpl::UnitImpl(std::int64_t in_channels, std::int64_t channels, std::int64_t stride,
                   bool bottleneck, bool se)
    : stride_(stride) {
  // AdaFace assigns shortcut_layer before res_layer: its keys come first in the state dict.
  // Where the channels stay, their shortcut is MaxPool2d(1, stride), a strided identity without
  // state; forward() takes every stride-th pixel instead.
  if (in_channels != channels) {
    shortcut_layer = register_module(
        "shortcut_layer",
        torch::nn::Sequential(conv(in_channels, channels, 1, stride), batch_norm(channels)));
  }
  res_layer = torch::nn::Sequential();
  if (bottleneck) {  // BottleneckIR: 1x1 down to channels / 4, 3x3, 1x1(stride) up
    const std::int64_t r = channels / 4;
    res_layer->push_back(batch_norm(in_channels));
    res_layer->push_back(conv(in_channels, r, 1, 1));
    res_layer->push_back(batch_norm(r));
    res_layer->push_back(prelu(r));
    res_layer->push_back(conv(r, r, 3, 1));
    res_layer->push_back(batch_norm(r));
    res_layer->push_back(prelu(r));
    res_layer->push_back(conv(r, channels, 1, stride));
    res_layer->push_back(batch_norm(channels));
  } else {  // BasicBlockIR
    res_layer->push_back(batch_norm(in_channels));
    res_layer->push_back(conv(in_channels, channels, 3, 1));
    res_layer->push_back(batch_norm(channels));
    res_layer->push_back(prelu(channels));
    res_layer->push_back(conv(channels, channels, 3, stride));
    res_layer->push_back(batch_norm(channels));
  }
  if (se) res_layer->push_back("se_block", SEModule(channels, kSeReduction));
  register_module("res_layer", res_layer);
}

torch::Tensor UnitImpl::forward(const torch::Tensor& x) {
  torch::Tensor shortcut = x;
  if (shortcut_layer) {
    shortcut = shortcut_layer->forward(x);
  } else if (stride_ != 1) {
    shortcut = x.slice(2, 0, x.size(2), stride_).slice(3, 0, x.size(3), stride_);
  }
  return res_layer->forward(x) + shortcut;
}

IR::IR(const Config& config) : config_(config) {
  if (config.width < 1) throw std::invalid_argument("width must be at least 1");
  const auto stages = stages_of(config.depth, config.width);
  const bool bottleneck = uses_bottleneck(config.depth);
  if (config.se && stages[0].channels < kSeReduction) {
    throw std::invalid_argument(
        "se needs 16 or more channels in every stage (SE reduces them 16-fold): width " +
        std::string(bottleneck ? "4" : "16") + " or more");
  }
  if (config.embedding < 1) throw std::invalid_argument("embedding must be at least 1");
  if (config.input < 16) throw std::invalid_argument("input must be at least 16 pixels");
  if (!(config.dropout >= 0.0 && config.dropout < 1.0)) {
    throw std::invalid_argument("dropout must be in [0, 1)");
  }
  const std::int64_t w = config.width;

  input_layer = register_module("input_layer",
                                torch::nn::Sequential(conv(3, w, 3, 1), batch_norm(w), prelu(w)));

  const std::int64_t out_channels = stages.back().channels;
  const std::int64_t side = feature_side(config.input);
  output_layer = register_module(
      "output_layer",
      torch::nn::Sequential(
          batch_norm(out_channels), torch::nn::Dropout(config.dropout), torch::nn::Flatten(),
          torch::nn::Linear(out_channels * side * side, config.embedding),
          torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(config.embedding).affine(false))));

  body = torch::nn::Sequential();
  std::int64_t in_channels = w;
  for (const auto& stage : stages) {
    // Every stage halves the resolution in its first unit (get_block's stride 2).
    body->push_back(Unit(in_channels, stage.channels, 2, bottleneck, config.se));
    for (std::int64_t i = 1; i < stage.units; ++i) {
      body->push_back(Unit(stage.channels, stage.channels, 1, bottleneck, config.se));
    }
    in_channels = stage.channels;
  }
  register_module("body", body);
  initialise();
}

// net.py's initialize_weights over all modules, after construction: kaiming-normal (fan_out,
// ReLU gain) for every conv and linear weight, zero biases, BN scale 1 and shift 0. The SE
// module's own xavier_uniform_ on fc1 is overwritten by this pass in their code too, since fc1
// is a Conv2d.
void IR::initialise() {
  torch::NoGradGuard no_grad;
  for (const auto& module : modules(/*include_self=*/false)) {
    if (auto* c = module->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* bn = module->as<torch::nn::BatchNorm2d>()) {
      torch::nn::init::ones_(bn->weight);
      torch::nn::init::zeros_(bn->bias);
    } else if (auto* fc = module->as<torch::nn::Linear>()) {
      torch::nn::init::kaiming_normal_(fc->weight, 0.0, torch::kFanOut, torch::kReLU);
      torch::nn::init::zeros_(fc->bias);
    }
  }
}

torch::Tensor IR::forward(const torch::Tensor& images) {
  if (images.dim() != 4 || images.size(1) != 3 || images.size(2) != config_.input ||
      images.size(3) != config_.input) {
    throw RuntimeError("ir: built for images [N,3," + std::to_string(config_.input) + "," +
                       std::to_string(config_.input) + "], got " + c10::str(images.sizes()));
  }
  return output_layer->forward(body->forward(input_layer->forward(images)));
}

}  // namespace flatface::ir
