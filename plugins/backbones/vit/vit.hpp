// The Vision Transformer of insightface `arcface_torch` (backbones/vit.py): non-overlapping
// patches (9x9 on 112x112: 144 of them, no class token) plus a learned position embedding,
// pre-norm blocks x + attn(norm1(x)), x + mlp(norm2(x)) with ReLU6 in the MLP and a bias-free qkv,
// a final norm, and a flatten -> FC -> BN1d -> FC -> BN1d head. Training adds stochastic depth
// and their random patch masking. Parameter and buffer names equal insightface's, in order, so
// state dicts move both ways. Their blocks run under CUDA autocast (attention scores in float32);
// here everything runs in the input's precision.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <cstdint>
#include <string>

#include "flatface/backbone.hpp"

namespace flatface::vit {

struct Config {
  std::int64_t dim = 256;        // token width (their embed_dim)
  std::int64_t depth = 12;       // blocks
  std::int64_t heads = 8;        // attention heads; dim must be a multiple
  double mlp_ratio = 4.0;        // MLP hidden width = int(dim * mlp_ratio)
  std::int64_t patch = 9;        // square patch side, also the patch conv's stride
  std::int64_t input = 112;      // square input side
  std::int64_t embedding = 512;  // D (their num_features / num_classes)
  double drop_path = 0.1;        // stochastic depth of the last block, linear from 0 at the first
  double mask_ratio = 0.1;       // share of patches replaced by mask_token in training
  std::string norm = "ln";       // "ln": LayerNorm over channels; "bn": BatchNorm1d over patches
};

// The vit_t, vit_s, vit_b and vit_l configurations of insightface's backbones/__init__.py;
// throws std::invalid_argument for any other size.
Config preset(const std::string& size);

// (input / patch)^2: the patch conv has kernel = stride = patch and no padding.
std::int64_t patch_count(const Config& config);

// Their VITBatchNorm: a BatchNorm1d whose channels are the patches of [N, patches, dim] tokens.
class PatchBatchNormImpl : public torch::nn::Module {
 public:
  explicit PatchBatchNormImpl(std::int64_t patches);
  torch::Tensor forward(const torch::Tensor& tokens) { return bn(tokens); }

  torch::nn::BatchNorm1d bn{nullptr};
};
TORCH_MODULE(PatchBatchNorm);

// Cuts images into patches and maps each to a token: [N,3,H,W] -> [N, patches, dim].
class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(std::int64_t patch, std::int64_t dim);
  torch::Tensor forward(const torch::Tensor& images);

  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(std::int64_t dim, std::int64_t heads);
  torch::Tensor forward(const torch::Tensor& tokens);

  torch::nn::Linear qkv{nullptr};
  torch::nn::Linear proj{nullptr};

 private:
  std::int64_t heads_;
  double scale_;
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(std::int64_t dim, std::int64_t hidden);
  torch::Tensor forward(const torch::Tensor& tokens);

  torch::nn::Linear fc1{nullptr};
  torch::nn::Linear fc2{nullptr};
};
TORCH_MODULE(Mlp);

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const Config& config, double drop_path);
  torch::Tensor forward(const torch::Tensor& tokens);

  torch::nn::AnyModule norm1, norm2;  // LayerNorm or PatchBatchNorm
  Attention attn{nullptr};
  Mlp mlp{nullptr};

 private:
  double drop_path_;
};
TORCH_MODULE(Block);

class VisionTransformer : public Backbone {
 public:
  explicit VisionTransformer(const Config& config);

  torch::Tensor forward(const torch::Tensor& images) override;
  std::int64_t embedding_dim() const override { return config_.embedding; }
  std::int64_t input_size() const override { return config_.input; }
  const Config& config() const { return config_; }

 private:
  void initialise();

  Config config_;
  std::int64_t patches_;
  torch::Tensor pos_embed;   // [1, patches, dim]
  torch::Tensor mask_token;  // [1, 1, dim]
  PatchEmbed patch_embed{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::AnyModule norm;
  torch::nn::Sequential feature{nullptr};
};

}  // namespace flatface::vit
