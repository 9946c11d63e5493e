#include "training/train_step.hpp"

#include <ATen/autocast_mode.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_sub.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/optim/optimizer.h>

#include <optional>
#include <type_traits>
#include <utility>

#include "flatface/torch_compat.hpp"
#include "kernels/convolution_check.hpp"

namespace flatface {

namespace {

// bf16 autocast on CUDA for one scope. The cast cache is cleared on exit: the strategies move
// the weights between passes, and a cached bf16 copy of the old weights must never be reused.
class CudaAutocast {
 public:
  CudaAutocast() : previous_(cuda_autocast()) {
    set_cuda_autocast({true, at::kBFloat16});
    at::autocast::increment_nesting();
  }
  ~CudaAutocast() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    set_cuda_autocast(previous_);
  }
  CudaAutocast(const CudaAutocast&) = delete;
  CudaAutocast& operator=(const CudaAutocast&) = delete;

 private:
  AutocastState previous_;
};

// BN momentum 0 for one scope, so a forward pass normalises with batch statistics but leaves the
// running statistics as they were (the SAM and AACE reference code do the same); the counter
// the pass increments is stepped back, so the buffers end bit-identical.
class FrozenBatchNorm {
 public:
  FrozenBatchNorm(const std::vector<torch::nn::BatchNormOptions*>& options,
                  const std::vector<at::Tensor>& counters)
      : options_(options), counters_(counters) {
    saved_.reserve(options_.size());
    for (auto* o : options_) {
      saved_.push_back(o->momentum());
      o->momentum() = 0.0;
    }
  }
  ~FrozenBatchNorm() {
    for (std::size_t i = 0; i < options_.size(); ++i) options_[i]->momentum() = saved_[i];
    at::NoGradGuard no_grad;
    if (!counters_.empty()) at::_foreach_sub_(counters_, 1);
  }
  FrozenBatchNorm(const FrozenBatchNorm&) = delete;
  FrozenBatchNorm& operator=(const FrozenBatchNorm&) = delete;

 private:
  const std::vector<torch::nn::BatchNormOptions*>& options_;
  const std::vector<at::Tensor>& counters_;
  std::vector<std::decay_t<decltype(std::declval<torch::nn::BatchNormOptions&>().momentum())>>
      saved_;
};

// The BatchNorm{1,2,3}d modules of `module` that track running statistics.
template <typename Impl>
void collect_batch_norm(const std::shared_ptr<torch::nn::Module>& m,
                        std::vector<torch::nn::BatchNormOptions*>& options,
                        std::vector<at::Tensor>& counters) {
  auto bn = std::dynamic_pointer_cast<Impl>(m);
  if (!bn || !bn->options.track_running_stats()) return;
  options.push_back(&bn->options);
  counters.push_back(bn->num_batches_tracked);
}

}  // namespace

TrainStep::TrainStep(std::shared_ptr<Backbone> backbone, std::shared_ptr<MarginHead> head,
                     torch::optim::Optimizer& optimizer, TrainStepOptions options)
    : backbone_(std::move(backbone)),
      head_(std::move(head)),
      optimizer_(optimizer),
      options_(std::move(options)),
      ranks_(*options_.data_parallel.ranks) {
  ensure_trusted_cpu_convolutions();  // before the first gradient (kernels/convolution_check.hpp)
  if (options_.bn_second_pass != "freeze" && options_.bn_second_pass != "update") {
    throw ConfigError("bn_second_pass is '" + options_.bn_second_pass +
                      "'; expected one of: freeze, update");
  }
  for (const torch::nn::Module* m : {static_cast<torch::nn::Module*>(backbone_.get()),
                                     static_cast<torch::nn::Module*>(head_.get())}) {
    for (const auto& p : m->parameters()) {
      if (p.requires_grad()) parameters_.push_back(p);
    }
  }
  base_lr_ = optimizer_.param_groups().front().options().get_lr();
  for (const auto& m : {std::static_pointer_cast<torch::nn::Module>(backbone_),
                        std::static_pointer_cast<torch::nn::Module>(head_)}) {
    for (const auto& sub : m->modules(/*include_self=*/true)) {
      collect_batch_norm<torch::nn::BatchNorm1dImpl>(sub, batch_norm_options_,
                                                     batch_norm_counters_);
      collect_batch_norm<torch::nn::BatchNorm2dImpl>(sub, batch_norm_options_,
                                                     batch_norm_counters_);
      collect_batch_norm<torch::nn::BatchNorm3dImpl>(sub, batch_norm_options_,
                                                     batch_norm_counters_);
    }
  }
}

StepStats TrainStep::run(Perturbation& strategy, const at::Tensor& images,
                         const at::Tensor& labels) {
  images_ = images;
  labels_ = labels;
  select_samples(at::Tensor());
  correct_ = at::Tensor();
  HeadStep where;
  where.step = step_;
  where.total_steps = total_steps_;
  where.first_row = options_.data_parallel.first_row;
  where.global_rows =
      options_.data_parallel.global_rows > 0 ? options_.data_parallel.global_rows : labels.size(0);
  head_->begin_step(where);
  StepStats stats = strategy.step(*this);
  average_stats(stats);
  ++step_;
  // Do not keep the batch (or the head's term and its graph) alive between steps.
  images_ = selected_images_ = regularizer_ = at::Tensor();
  if (correct_.defined())
    correct_sum_ = correct_sum_.defined() ? correct_sum_ + correct_ : correct_;
  return stats;
}

std::int64_t TrainStep::take_correct() {
  // Summed over the ranks in float64, exact for every count below 2^53.
  at::Tensor sum = correct_sum_.defined() ? correct_sum_.to(at::kDouble).reshape({1})
                                          : at::zeros({1}, at::kDouble);
  ranks_.all_reduce_sum({sum});
  correct_sum_ = at::Tensor();
  return static_cast<std::int64_t>(sum.item<double>() + 0.5);
}

void TrainStep::set_progress(std::int64_t step, std::int64_t total_steps) {
  step_ = step;
  total_steps_ = total_steps;
}

StepProgress TrainStep::progress() const {
  StepProgress p;
  p.step = step_;
  p.total_steps = total_steps_;
  p.lr = optimizer_.param_groups().front().options().get_lr();
  p.base_lr = base_lr_;
  return p;
}

void TrainStep::select_samples(const at::Tensor& rows) {
  if (!rows.defined()) {
    selected_images_ = images_;
    selected_labels_ = labels_;
    return;
  }
  selected_images_ = images_.index_select(0, rows);
  selected_labels_ = labels_.index_select(0, rows);
}

at::Tensor TrainStep::embed() {
  const at::Tensor& images = selected_images_;
  if (!options_.bf16_autocast) return backbone_->forward(images);
  if (!images.is_cuda()) {
    throw ConfigError("precision \"bf16\" needs a CUDA device; the batch is on " +
                      images.device().str());
  }
  CudaAutocast autocast;
  return backbone_->forward(images).to(at::kFloat);  // the head works in fp32
}

at::Tensor TrainStep::forward(Pass pass) {
  backbone_->train();
  head_->train();
  if (pass == Pass::first) {
    // Running BN statistics and head statistics (AdaFace) update here, once per step.
    head_->set_update_statistics(true);
    at::Tensor embeddings = embed();
    {
      at::NoGradGuard no_grad;
      correct_ = head_->cosine(embeddings.detach()).argmax(1).eq(selected_labels_).sum();
    }
    at::Tensor logits = head_->logits(embeddings, selected_labels_);
    regularizer_ = head_->regularizer(embeddings, selected_labels_);
    return logits;
  }
  // The perturbed pass: gradients only, no statistics.
  head_->set_update_statistics(false);
  at::Tensor embeddings;
  if (options_.bn_second_pass == "freeze") {
    FrozenBatchNorm frozen(batch_norm_options_, batch_norm_counters_);
    embeddings = embed();
  } else {
    embeddings = embed();
  }
  at::Tensor logits = head_->logits(embeddings, selected_labels_);
  regularizer_ = head_->regularizer(embeddings, selected_labels_);
  head_->set_update_statistics(true);
  return logits;
}

void TrainStep::zero_grad() {
  gradients_averaged_ = false;
  // Set to none rather than zeroed: the next backward writes the gradient without a memset.
  for (auto& p : parameters_) {
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
  }
}

void TrainStep::optimizer_step() {
  if (!gradients_averaged_) average_gradients();
  optimizer_.step();
}

void TrainStep::share_first_gradient() {
  if (options_.data_parallel.global_epsilon) average_gradients();
}

// The global batch's gradient: each rank's is the mean over its rows, so the ranks' gradients
// weighted by their shares of the batch sum to the mean over all rows (unequal shares included).
// One process's gradient is the batch's already; it is left as it is (a parameter the loss did
// not reach keeps no gradient, and SGD leaves it alone).
void TrainStep::average_gradients() {
  gradients_averaged_ = true;
  if (ranks_.world_size() == 1) return;
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  grads.reserve(parameters_.size());
  for (auto& p : parameters_) {
    // A parameter this rank's loss did not reach may have been reached on another rank.
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    grads.push_back(p.grad());
  }
  const double share = options_.data_parallel.batch_share;
  if (share != 1.0) at::_foreach_mul_(grads, share);
  ranks_.all_reduce_sum(grads);
}

// Losses are means over the rows, so they average like the gradient. The norms are those of
// averaged gradients under epsilon = "global" (equal on every rank, unchanged by the average) and
// the ranks' mean under "local". A NaN on any rank makes the average NaN on all, so that every
// rank fails the step together. A statistic the strategy did not compute stays absent (the ranks
// run the same strategy on the same step; it travels as 0). One process's are the batch's.
void TrainStep::average_stats(StepStats& stats) {
  if (ranks_.world_size() == 1) return;
  std::optional<double>* optional[] = {&stats.perturbation_loss, &stats.loss_perturbed,
                                       &stats.grad_norm, &stats.epsilon_norm};
  std::vector<double> v{stats.loss};
  for (auto* o : optional) v.push_back(o->value_or(0.0));
  at::Tensor t = at::tensor(v, at::kDouble).mul_(options_.data_parallel.batch_share);
  if (!parameters_.empty()) t = t.to(parameters_.front().device());
  ranks_.all_reduce_sum({t});
  t = t.cpu();
  const double* a = t.data_ptr<double>();
  stats.loss = a[0];
  for (std::size_t i = 0; i < 4; ++i)
    if (optional[i]->has_value()) *optional[i] = a[i + 1];
}

std::vector<at::Tensor>& TrainStep::saved_weights() {
  if (saved_weights_.size() != parameters_.size()) {  // first use: allocated once per run
    saved_weights_.clear();
    saved_weights_.reserve(parameters_.size());
    for (const auto& p : parameters_) saved_weights_.push_back(at::empty_like(p.detach()));
  }
  return saved_weights_;
}

}  // namespace flatface
