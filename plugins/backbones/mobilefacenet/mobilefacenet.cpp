#include "mobilefacenet.hpp"

#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <stdexcept>
#include <string>

#include "flatface/options.hpp"

namespace flatface::mobilefacenet {

namespace {

// insightface builds every BN with PyTorch's defaults: eps 1e-5, momentum 0.1.
constexpr double kBnEps = 1e-5;
constexpr double kBnMomentum = 0.1;

// Fixed widths of insightface's code, whatever the scale.
constexpr std::int64_t kSepChannels = 512;    // conv_sep's output and the GDC's channels
constexpr std::int64_t kStemGroups = 64;      // stem's second conv when blocks[0] == 1
constexpr std::int64_t kWidth64 = 128;        // bottleneck width of the 64·scale stages
constexpr std::int64_t kWidth128 = 256;       // ... of the 128·scale stages
constexpr std::int64_t kWidthLastDown = 512;  // ... of the last downsampling bottleneck

torch::nn::Conv2d conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride,
                       std::int64_t padding, std::int64_t groups) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                               .stride(stride)
                               .padding(padding)
                               .groups(groups)
                               .bias(false));
}

torch::nn::BatchNorm2d batch_norm(std::int64_t channels) {
  return torch::nn::BatchNorm2d(
      torch::nn::BatchNorm2dOptions(channels).eps(kBnEps).momentum(kBnMomentum));
}

std::string str(const std::vector<std::int64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

}  // namespace

std::int64_t feature_side(std::int64_t input) {
  std::int64_t side = input;
  for (int halving = 0; halving < 4; ++halving) side = (side - 1) / 2 + 1;
  return side;
}

ConvBlockImpl::ConvBlockImpl(std::int64_t in, std::int64_t out, std::int64_t kernel,
                             std::int64_t stride, std::int64_t padding, std::int64_t groups) {
  layers = register_module(
      "layers",
      torch::nn::Sequential(conv(in, out, kernel, stride, padding, groups), batch_norm(out),
                            torch::nn::PReLU(torch::nn::PReLUOptions().num_parameters(out))));
}

LinearBlockImpl::LinearBlockImpl(std::int64_t in, std::int64_t out, std::int64_t kernel,
                                 std::int64_t groups) {
  layers = register_module(
      "layers", torch::nn::Sequential(conv(in, out, kernel, 1, 0, groups), batch_norm(out)));
}

DepthWiseImpl::DepthWiseImpl(std::int64_t in, std::int64_t out, std::int64_t width,
                             std::int64_t stride, bool residual)
    : residual(residual) {
  layers =
      register_module("layers", torch::nn::Sequential(ConvBlock(in, width, 1, 1, 0, 1),
                                                      ConvBlock(width, width, 3, stride, 1, width),
                                                      LinearBlock(width, out, 1, 1)));
}

torch::Tensor DepthWiseImpl::forward(const torch::Tensor& x) {
  auto y = layers->forward(x);
  return residual ? x + y : y;
}

ResidualImpl::ResidualImpl(std::int64_t channels, std::int64_t blocks, std::int64_t width) {
  layers = register_module("layers", torch::nn::Sequential());
  for (std::int64_t i = 0; i < blocks; ++i) {
    layers->push_back(DepthWise(channels, channels, width, 1, /*residual=*/true));
  }
}

GDCImpl::GDCImpl(std::int64_t side, std::int64_t embedding) {
  layers = register_module(
      "layers",
      torch::nn::Sequential(
          LinearBlock(kSepChannels, kSepChannels, side, /*groups=*/kSepChannels),
          torch::nn::Flatten(),
          torch::nn::Linear(torch::nn::LinearOptions(kSepChannels, embedding).bias(false)),
          torch::nn::BatchNorm1d(
              torch::nn::BatchNorm1dOptions(embedding).eps(kBnEps).momentum(kBnMomentum))));
}

MobileFaceNet::MobileFaceNet(const Config& config) : config_(config) {
  const auto& blocks = config.blocks;
  bool blocks_ok = blocks.size() == 4;
  for (auto b : blocks) blocks_ok = blocks_ok && b >= 1;
  if (!blocks_ok) {
    throw std::invalid_argument("blocks must be 4 integers >= 1 (got " + str(blocks) + ")");
  }
  if (config.scale < 1) {
    throw std::invalid_argument("scale must be at least 1 (got " + std::to_string(config.scale) +
                                ")");
  }
  if (config.embedding < 1) throw std::invalid_argument("embedding must be at least 1");
  if (config.input < 1) throw std::invalid_argument("input must be at least 1 pixel");
  const std::int64_t c64 = 64 * config.scale;
  const std::int64_t c128 = 128 * config.scale;

  // Registration order equals insightface's, so state dicts list keys in the same order.
  layers = register_module("layers", torch::nn::Sequential());
  layers->push_back(ConvBlock(3, c64, 3, 2, 1, 1));
  if (blocks[0] == 1) {
    // Not depthwise: 64 groups of `scale` channels each (depthwise only when scale is 1).
    layers->push_back(ConvBlock(c64, c64, 3, 1, 1, kStemGroups));
  } else {
    layers->push_back(Residual(c64, blocks[0], kWidth64));
  }
  layers->push_back(DepthWise(c64, c64, kWidth64, 2, /*residual=*/false));
  layers->push_back(Residual(c64, blocks[1], kWidth64));
  layers->push_back(DepthWise(c64, c128, kWidth128, 2, /*residual=*/false));
  layers->push_back(Residual(c128, blocks[2], kWidth128));
  layers->push_back(DepthWise(c128, c128, kWidthLastDown, 2, /*residual=*/false));
  layers->push_back(Residual(c128, blocks[3], kWidth128));
  conv_sep = register_module("conv_sep", ConvBlock(c128, kSepChannels, 1, 1, 0, 1));
  features = register_module("features", GDC(feature_side(config.input), config.embedding));
  initialise();
}

void MobileFaceNet::initialise() {
  // insightface's _initialize_weights: He normal over fan_out for convs and the linear layer,
  // BN2d scale 1 and shift 0; PReLU slopes (0.25) and the BN1d keep PyTorch's defaults.
  torch::NoGradGuard no_grad;
  for (const auto& module : modules(/*include_self=*/false)) {
    if (auto* c = module->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* bn = module->as<torch::nn::BatchNorm2d>()) {
      torch::nn::init::constant_(bn->weight, 1.0);
      torch::nn::init::constant_(bn->bias, 0.0);
    } else if (auto* fc = module->as<torch::nn::Linear>()) {
      torch::nn::init::kaiming_normal_(fc->weight, 0.0, torch::kFanOut, torch::kReLU);
    }
  }
}

torch::Tensor MobileFaceNet::forward(const torch::Tensor& images) {
  if (images.dim() != 4 || images.size(1) != 3 || images.size(2) != config_.input ||
      images.size(3) != config_.input) {
    throw RuntimeError("mobilefacenet: built for images [N,3," + std::to_string(config_.input) +
                       "," + std::to_string(config_.input) + "], got " + c10::str(images.sizes()));
  }
  return features(conv_sep(layers->forward(images)));
}

}  // namespace flatface::mobilefacenet
