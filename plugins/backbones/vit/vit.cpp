#include "vit.hpp"

#include <ATen/ops/argsort.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/hardtanh.h>
#include <ATen/ops/linspace.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/zeros.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/normalization.h>

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace flatface::vit {

namespace {

// Their feature head's BatchNorm1d layers use eps 2e-5; every other norm keeps PyTorch's 1e-5.
constexpr double kFeatureBnEps = 2e-5;

std::string text(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

torch::nn::AnyModule token_norm(const Config& config, std::int64_t patches) {
  if (config.norm == "bn") return torch::nn::AnyModule(PatchBatchNorm(patches));
  return torch::nn::AnyModule(
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.dim}).eps(1e-5)));
}

torch::nn::Linear linear(std::int64_t in, std::int64_t out, bool bias) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}

// Stochastic depth (Huang et al. 2016) on a residual branch: in training, each sample keeps the
// branch with probability 1 - rate, scaled by 1 / (1 - rate), as timm's DropPath does.
torch::Tensor drop_path(const torch::Tensor& branch, double rate, bool training) {
  if (!training || rate == 0.0) return branch;
  const double keep = 1.0 - rate;
  auto mask = at::empty({branch.size(0), 1, 1}, branch.options()).bernoulli_(keep).div_(keep);
  return branch * mask;
}

// timm's trunc_normal_(t, std) cuts at +-2 absolute: 100 standard deviations at std 0.02, so the
// clamp never bites and the draw is a plain normal.
void trunc_normal(const torch::Tensor& t, double std) {
  torch::nn::init::normal_(t, 0.0, std);
  t.clamp_(-2.0, 2.0);
}

const Config& validated(const Config& c) {
  if (c.dim < 1) throw std::invalid_argument("dim must be at least 1");
  if (c.depth < 1) throw std::invalid_argument("depth must be at least 1");
  if (c.heads < 1 || c.dim % c.heads != 0) {
    throw std::invalid_argument("heads must divide dim (dim " + std::to_string(c.dim) + ", heads " +
                                std::to_string(c.heads) + ")");
  }
  if (!(c.mlp_ratio > 0.0) || static_cast<std::int64_t>(c.dim * c.mlp_ratio) < 1) {
    throw std::invalid_argument("mlp_ratio must leave the MLP at least one hidden unit");
  }
  if (c.patch < 1) throw std::invalid_argument("patch must be at least 1");
  if (c.input < c.patch) throw std::invalid_argument("input must be at least one patch wide");
  if (c.embedding < 1) throw std::invalid_argument("embedding must be at least 1");
  if (!(c.drop_path >= 0.0 && c.drop_path < 1.0)) {
    throw std::invalid_argument("drop_path must be in [0, 1) (got " + text(c.drop_path) + ")");
  }
  if (!(c.mask_ratio >= 0.0 && c.mask_ratio < 1.0) ||
      static_cast<std::int64_t>(patch_count(c) * (1.0 - c.mask_ratio)) < 1) {
    throw std::invalid_argument("mask_ratio must be in [0, 1) and keep a patch (got " +
                                text(c.mask_ratio) + ")");
  }
  if (c.norm != "ln" && c.norm != "bn") throw std::invalid_argument("norm must be ln or bn");
  if (c.norm == "bn" && c.mask_ratio > 0.0) {
    // A batch norm over patches needs all of them; insightface's model fails there as well.
    throw std::invalid_argument("mask_ratio must be 0 with norm = \"bn\" (got " +
                                text(c.mask_ratio) + ")");
  }
  return c;
}

}  // namespace

Config preset(const std::string& size) {
  Config c;  // vit_t
  if (size == "t") return c;
  if (size == "s") {
    c.dim = 512;
  } else if (size == "b") {
    c.dim = 512;
    c.depth = 24;
  } else if (size == "l") {
    // vit_l_dp005_mask_005. Their forward_features calls random_masking(x) without the configured
    // ratio, so its default 0.1 is what their training masks; 0.1 here does the same.
    c.dim = 768;
    c.depth = 24;
    c.drop_path = 0.05;
  } else {
    throw std::invalid_argument("size must be one of t, s, b, l (got " + size + ")");
  }
  return c;
}

std::int64_t patch_count(const Config& config) {
  const std::int64_t side = config.input / config.patch;
  return side * side;
}

PatchBatchNormImpl::PatchBatchNormImpl(std::int64_t patches) {
  bn = register_module("bn", torch::nn::BatchNorm1d(patches));
}

PatchEmbedImpl::PatchEmbedImpl(std::int64_t patch, std::int64_t dim) {
  proj = register_module("proj",
                         torch::nn::Conv2d(torch::nn::Conv2dOptions(3, dim, patch).stride(patch)));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& images) {
  return proj(images).flatten(2).transpose(1, 2);
}

AttentionImpl::AttentionImpl(std::int64_t dim, std::int64_t heads)
    : heads_(heads), scale_(1.0 / std::sqrt(static_cast<double>(dim / heads))) {
  qkv = register_module("qkv", linear(dim, 3 * dim, /*bias=*/false));
  proj = register_module("proj", linear(dim, dim, /*bias=*/true));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& tokens) {
  const auto n = tokens.size(0), length = tokens.size(1), dim = tokens.size(2);
  // [3, N, heads, length, dim / heads]
  const auto qkv_heads =
      qkv(tokens).reshape({n, length, 3, heads_, dim / heads_}).permute({2, 0, 3, 1, 4});
  const auto q = qkv_heads[0], k = qkv_heads[1], v = qkv_heads[2];
  const auto attention = (q.matmul(k.transpose(-2, -1)) * scale_).softmax(-1);  // softmax(qkᵀ/√d)
  return proj(attention.matmul(v).transpose(1, 2).reshape({n, length, dim}));
}

MlpImpl::MlpImpl(std::int64_t dim, std::int64_t hidden) {
  fc1 = register_module("fc1", linear(dim, hidden, /*bias=*/true));
  fc2 = register_module("fc2", linear(hidden, dim, /*bias=*/true));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& tokens) {
  return fc2(at::hardtanh(fc1(tokens), 0.0, 6.0));  // ReLU6
}

BlockImpl::BlockImpl(const Config& config, double drop_path) : drop_path_(drop_path) {
  // insightface registers both norms before the attention: that is the state dict's order.
  const std::int64_t patches = patch_count(config);
  norm1 = token_norm(config, patches);
  register_module("norm1", norm1.ptr());
  norm2 = token_norm(config, patches);
  register_module("norm2", norm2.ptr());
  attn = register_module("attn", Attention(config.dim, config.heads));
  const auto hidden = static_cast<std::int64_t>(config.dim * config.mlp_ratio);
  mlp = register_module("mlp", Mlp(config.dim, hidden));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& tokens) {
  auto x = tokens + drop_path(attn(norm1.forward(tokens)), drop_path_, is_training());
  return x + drop_path(mlp(norm2.forward(x)), drop_path_, is_training());
}

VisionTransformer::VisionTransformer(const Config& config)
    : config_(validated(config)), patches_(patch_count(config_)) {
  const std::int64_t dim = config.dim;
  // Python's state dict lists a module's own parameters first, in the order they were assigned.
  pos_embed = register_parameter("pos_embed", at::zeros({1, patches_, dim}));
  mask_token = register_parameter("mask_token", at::zeros({1, 1, dim}));
  patch_embed = register_module("patch_embed", PatchEmbed(config.patch, dim));
  blocks = register_module("blocks", torch::nn::ModuleList());
  // Stochastic depth grows linearly over the blocks; linspace in float32 as theirs.
  const auto rates = at::linspace(0.0, config.drop_path, config.depth);
  for (std::int64_t i = 0; i < config.depth; ++i) {
    blocks->push_back(Block(config, rates[i].item<double>()));
  }
  norm = token_norm(config, patches_);
  register_module("norm", norm.ptr());
  feature = register_module(
      "feature", torch::nn::Sequential(
                     linear(dim * patches_, dim, /*bias=*/false),
                     torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(dim).eps(kFeatureBnEps)),
                     linear(dim, config.embedding, /*bias=*/false),
                     torch::nn::BatchNorm1d(
                         torch::nn::BatchNorm1dOptions(config.embedding).eps(kFeatureBnEps))));
  initialise();
}

void VisionTransformer::initialise() {
  torch::NoGradGuard no_grad;
  torch::nn::init::normal_(mask_token, 0.0, 0.02);
  trunc_normal(pos_embed, 0.02);
  // Their _init_weights: Linear weights trunc_normal(0.02) and zero biases, LayerNorm 1 and 0.
  // The patch conv and the batch norms keep PyTorch's defaults.
  for (const auto& module : modules(/*include_self=*/false)) {
    if (auto* fc = module->as<torch::nn::Linear>()) {
      trunc_normal(fc->weight, 0.02);
      if (fc->bias.defined()) torch::nn::init::zeros_(fc->bias);
    } else if (auto* ln = module->as<torch::nn::LayerNorm>()) {
      torch::nn::init::ones_(ln->weight);
      torch::nn::init::zeros_(ln->bias);
    }
  }
}

torch::Tensor VisionTransformer::forward(const torch::Tensor& images) {
  if (images.dim() != 4 || images.size(1) != 3 || images.size(2) != config_.input ||
      images.size(3) != config_.input) {
    throw RuntimeError("vit: built for images [N,3," + std::to_string(config_.input) + "," +
                       std::to_string(config_.input) + "], got " + c10::str(images.sizes()));
  }
  const auto n = images.size(0), dim = config_.dim;
  auto x = patch_embed(images) + pos_embed;

  // Their random_masking: a random permutation per sample (argsort of uniform noise) keeps the
  // first int(patches * (1 - mask_ratio)) patches; the blocks see only those.
  const bool masking = is_training() && config_.mask_ratio > 0.0;
  torch::Tensor restore;
  if (masking) {
    const auto kept = static_cast<std::int64_t>(patches_ * (1.0 - config_.mask_ratio));
    const auto shuffle =
        at::rand({n, patches_}, x.options()).argsort(/*dim=*/1, /*descending=*/false);
    restore = shuffle.argsort(/*dim=*/1, /*descending=*/false);
    x = x.gather(1, shuffle.slice(1, 0, kept).unsqueeze(-1).expand({-1, -1, dim}));
  }
  for (const auto& block : *blocks) x = block->as<BlockImpl>()->forward(x);
  x = norm.forward(x);
  if (masking) {
    // The dropped patches come back as mask_token (after the norm), in their original places.
    const auto masked = mask_token.expand({n, patches_ - x.size(1), dim});
    x = at::cat({x, masked}, 1).gather(1, restore.unsqueeze(-1).expand({-1, -1, dim}));
  }
  return feature->forward(x.reshape({n, patches_ * dim}));
}

}  // namespace flatface::vit
