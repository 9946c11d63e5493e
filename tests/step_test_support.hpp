// Test-local models, tensor helpers and plugin access for the head, perturbation and training-step
// tests. The tiny models are written here, independently of the plugins under test.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/linear.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "flatface/plugin.hpp"
#include "json_file.hpp"
#include "plugin_host/factory.hpp"

namespace flatface::testing {

inline const Registry& step_plugins() {
  static const std::unique_ptr<Registry> registry = open_registry({});
  return *registry;
}

inline std::string vectors(const std::string& file) {
  return std::string(FLATFACE_SHARED_DIR) + "/vectors/" + file;
}

// Options as a TOML table would give them.
inline Options options_of(const std::string& what,
                          const std::map<std::string, Options::Value>& values = {}) {
  Options o(what, SourcePos{"test.toml", 1, 1});
  for (const auto& [key, value] : values) o.set(key, value);
  return o;
}
inline Options::Value num(double v) {
  return Options::Value{v, SourcePos{"test.toml", 2, 1}};
}
inline Options::Value flag(bool v) {
  return Options::Value{v, SourcePos{"test.toml", 2, 1}};
}

// A head built through its plugin entry, converted to float64.
inline std::shared_ptr<MarginHead> head_plugin(
    const std::string& name, std::int64_t classes, std::int64_t dim,
    const std::map<std::string, Options::Value>& values = {}) {
  auto head = step_plugins()
                  .get(PluginKind::head, name)
                  .entry.head(HeadArgs{options_of("head '" + name + "'", values), dim, classes});
  head->to(at::kDouble);
  return head;
}

inline std::unique_ptr<Perturbation> strategy(
    const std::string& name, const std::map<std::string, Options::Value>& values = {},
    std::uint64_t seed = 0) {
  return make_perturbation(step_plugins(), name, options_of("perturbation '" + name + "'", values),
                           seed);
}
inline Options::Value integer(std::int64_t v) {
  return Options::Value{v, SourcePos{"test.toml", 2, 1}};
}
inline Options::Value text(const std::string& v) {
  return Options::Value{v, SourcePos{"test.toml", 2, 1}};
}

// float64 tensor of `shape` from row-major values.
inline at::Tensor doubles(std::vector<double> values, std::vector<std::int64_t> shape) {
  return at::from_blob(values.data(), shape, at::kDouble).clone();
}
inline at::Tensor longs(std::vector<std::int64_t> values) {
  auto n = static_cast<std::int64_t>(values.size());
  return at::from_blob(values.data(), {n}, at::kLong).clone();
}
inline at::Tensor labels_of(const Json& v) {
  return longs(v.get<std::vector<std::int64_t>>());
}
inline at::Tensor matrix_of(const Json& v) {
  return doubles(numbers_of(v),
                 {static_cast<std::int64_t>(v.size()), static_cast<std::int64_t>(v.at(0).size())});
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

inline void set_parameter(torch::nn::Module& m, const std::string& name, const at::Tensor& value) {
  at::NoGradGuard no_grad;
  m.named_parameters()[name].copy_(value);
}

// Copies every parameter and buffer of `from` into `to` (same architecture).
inline void copy_state(torch::nn::Module& to, const torch::nn::Module& from) {
  at::NoGradGuard no_grad;
  auto dst = to.named_parameters();
  for (const auto& p : from.named_parameters()) dst[p.key()].copy_(p.value());
  auto dst_buffers = to.named_buffers();
  for (const auto& b : from.named_buffers()) dst_buffers[b.key()].copy_(b.value());
}

inline std::vector<at::Tensor> trainable(torch::nn::Module& a, torch::nn::Module& b) {
  std::vector<at::Tensor> out;
  for (auto* m : {&a, &b}) {
    for (const auto& p : m->parameters()) {
      if (p.requires_grad()) out.push_back(p);
    }
  }
  return out;
}

inline std::vector<at::Tensor> clones(const std::vector<at::Tensor>& ts) {
  std::vector<at::Tensor> out;
  for (const auto& t : ts) out.push_back(t.detach().clone());
  return out;
}

inline double norm_of(const std::vector<at::Tensor>& ts) {
  double sum = 0;
  for (const auto& t : ts) sum += t.pow(2).sum().item<double>();
  return std::sqrt(sum);
}

// Embeddings are the inputs themselves: no parameters, so the head alone is trained.
class IdentityBackbone final : public Backbone {
 public:
  explicit IdentityBackbone(std::int64_t dim) : dim_(dim) {}
  torch::Tensor forward(const torch::Tensor& images) override { return images; }
  std::int64_t embedding_dim() const override { return dim_; }
  std::int64_t input_size() const override { return 0; }

 private:
  std::int64_t dim_;
};

// Linear(in → dim) then BatchNorm1d(dim): one weight matrix, 1-d biases and BN statistics.
class LinearBnBackbone final : public Backbone {
 public:
  LinearBnBackbone(std::int64_t in, std::int64_t dim)
      : dim_(dim),
        fc_(register_module("fc", torch::nn::Linear(in, dim))),
        bn_(register_module("bn", torch::nn::BatchNorm1d(dim))) {}
  torch::Tensor forward(const torch::Tensor& x) override { return bn_->forward(fc_->forward(x)); }
  std::int64_t embedding_dim() const override { return dim_; }
  std::int64_t input_size() const override { return 0; }
  torch::nn::BatchNorm1d& bn() { return bn_; }

 private:
  std::int64_t dim_;
  torch::nn::Linear fc_;
  torch::nn::BatchNorm1d bn_;
};

// A plain linear softmax classifier as a "head": logits = x Wᵀ + b.
class LinearHead final : public MarginHead {
 public:
  LinearHead(std::int64_t classes, std::int64_t dim) {
    weight_ = register_parameter("weight", at::zeros({classes, dim}));
    bias_ = register_parameter("bias", at::zeros({classes}));
  }
  torch::Tensor logits(const torch::Tensor& x, const torch::Tensor&) override {
    return x.mm(weight_.t()) + bias_;
  }
  torch::Tensor cosine(const torch::Tensor& x) override { return x.mm(weight_.t()) + bias_; }

 private:
  at::Tensor weight_;
  at::Tensor bias_;
};

// L_margin of a model on a batch, as the tests compute it themselves: the cross-entropy plus the
// mean of the head's own term (MagFace's), if it has one.
inline at::Tensor margin_loss_of(Backbone& backbone, MarginHead& head, const at::Tensor& x,
                                 const at::Tensor& y) {
  at::Tensor e = backbone.forward(x);
  at::Tensor loss = at::cross_entropy_loss(head.logits(e, y), y);
  at::Tensor r = head.regularizer(e, y);
  return r.defined() ? loss + r.mean() : loss;
}

inline std::vector<at::Tensor> grad_of(const at::Tensor& loss,
                                       const std::vector<at::Tensor>& params) {
  return torch::autograd::grad({loss}, params);
}

// Wraps a strategy and observes ε from outside: when the strategy asks for the second pass, the
// weights are at w + ε and w_saved holds w, so ε = (w + ε) − w_saved (exact up to one rounding).
class EpsilonRecorder final : public Perturbation {
 public:
  explicit EpsilonRecorder(std::unique_ptr<Perturbation> inner) : inner_(std::move(inner)) {}
  StepStats step(StepContext& ctx) override {
    epsilon.clear();
    Context observed(ctx, epsilon);
    return inner_->step(observed);
  }
  bool two_pass() const override { return inner_->two_pass(); }
  std::vector<at::Tensor> state() const override { return inner_->state(); }
  void load_state(const std::vector<at::Tensor>& s) override { inner_->load_state(s); }

  std::vector<at::Tensor> epsilon;  // of the last step's second pass; empty for one-pass steps

 private:
  class Context final : public StepContext {
   public:
    Context(StepContext& inner, std::vector<at::Tensor>& epsilon)
        : inner_(inner), epsilon_(epsilon) {}
    at::Tensor forward(Pass pass) override {
      if (pass == Pass::second) {
        at::NoGradGuard no_grad;
        epsilon_.clear();
        const auto& w = inner_.parameters();
        for (std::size_t i = 0; i < w.size(); ++i)
          epsilon_.push_back(w[i].detach() - inner_.saved_weights()[i]);
      }
      return inner_.forward(pass);
    }
    const at::Tensor& labels() const override { return inner_.labels(); }
    void select_samples(const at::Tensor& rows) override { inner_.select_samples(rows); }
    const std::vector<at::Tensor>& parameters() const override { return inner_.parameters(); }
    void zero_grad() override { inner_.zero_grad(); }
    void optimizer_step() override { inner_.optimizer_step(); }
    std::vector<at::Tensor>& saved_weights() override { return inner_.saved_weights(); }
    StepProgress progress() const override { return inner_.progress(); }
    Collectives& collectives() override { return inner_.collectives(); }
    at::Tensor regularizer() const override { return inner_.regularizer(); }

   private:
    StepContext& inner_;
    std::vector<at::Tensor>& epsilon_;
  };
  std::unique_ptr<Perturbation> inner_;
};

inline std::unique_ptr<EpsilonRecorder> recorded(std::unique_ptr<Perturbation> inner) {
  return std::make_unique<EpsilonRecorder>(std::move(inner));
}

// Rank 0 of two for a head's collectives, whose partner rank adds `partner` to every sum.
class TwoRanks final : public Collectives {
 public:
  explicit TwoRanks(at::Tensor partner) : partner_(std::move(partner)) {}
  int world_size() const override { return 2; }
  void all_reduce_sum(const std::vector<at::Tensor>& tensors) override {
    for (const auto& t : tensors) t.add_(partner_);
  }

 private:
  at::Tensor partner_;
};

}  // namespace flatface::testing
