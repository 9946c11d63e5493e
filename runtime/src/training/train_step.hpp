// The host's side of one optimisation step: the StepContext a perturbation strategy drives
// (paper eqs. 15-21). It runs the backbone and margin head, applies the BN policy of the second
// pass, records training accuracy, and owns the scratch buffer for the saved weights.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "distributed/communicator.hpp"
#include "flatface/backbone.hpp"
#include "flatface/head.hpp"
#include "flatface/perturbation.hpp"

namespace torch::optim {
class Optimizer;
}
namespace torch::nn {
struct BatchNormOptions;
}

namespace flatface {

// How this rank's step joins the other ranks' in a data-parallel run: the run's ranks (one
// process: rank 0 of 1), this rank's share of the global batch (its rows / the global batch size:
// the weight of its gradient and statistics in their averages over the ranks), and whether ε
// follows the global batch's gradient.
struct DataParallel {
  distributed::Communicator* ranks = &distributed::single_process();
  double batch_share = 1.0;
  bool global_epsilon = true;
  // This rank's first row in the global batch and the global batch's rows (0: this rank's batch
  // is the whole of it), for heads that draw per row (HeadStep).
  std::int64_t first_row = 0;
  std::int64_t global_rows = 0;
};

struct TrainStepOptions {
  std::string bn_second_pass = "freeze";  // freeze: the second pass leaves BN running stats alone
  bool bf16_autocast = false;  // CUDA only: the backbone forward runs under bf16 autocast
  DataParallel data_parallel = {};
};

class TrainStep final : public StepContext {
 public:
  TrainStep(std::shared_ptr<Backbone> backbone, std::shared_ptr<MarginHead> head,
            torch::optim::Optimizer& optimizer, TrainStepOptions options);

  // One optimisation step of `strategy` on a batch (images and int64 labels on the model's device).
  // The step index advances by one after each step.
  StepStats run(Perturbation& strategy, const at::Tensor& images, const at::Tensor& labels);
  // Where the next step stands in its run (a resumed run starts past 0); total 0: not known.
  void set_progress(std::int64_t step, std::int64_t total_steps);
  // Samples whose first-pass cosine argmax equals the label, summed over every step since the
  // last call (and over the ranks), then reset: one device read per epoch instead of one per step.
  std::int64_t take_correct();

  // StepContext
  at::Tensor forward(Pass pass) override;
  const at::Tensor& labels() const override { return selected_labels_; }
  void select_samples(const at::Tensor& rows) override;
  const std::vector<at::Tensor>& parameters() const override { return parameters_; }
  void zero_grad() override;
  void optimizer_step() override;
  void share_first_gradient() override;
  std::vector<at::Tensor>& saved_weights() override;
  StepProgress progress() const override;
  Collectives& collectives() override { return ranks_; }
  at::Tensor regularizer() const override { return regularizer_; }

 private:
  at::Tensor embed();                    // backbone forward, under autocast when asked
  void average_gradients();              // over the ranks, weighted by their shares of the batch
  void average_stats(StepStats& stats);  // the global batch's statistics, on every rank

  std::shared_ptr<Backbone> backbone_;
  std::shared_ptr<MarginHead> head_;
  torch::optim::Optimizer& optimizer_;
  TrainStepOptions options_;
  distributed::Communicator& ranks_;    // options_.data_parallel.ranks
  std::vector<at::Tensor> parameters_;  // backbone then head, those that require grad
  std::vector<at::Tensor> saved_weights_;
  // Every BatchNorm that tracks running statistics: its options (for momentum) and counter.
  std::vector<torch::nn::BatchNormOptions*> batch_norm_options_;
  std::vector<at::Tensor> batch_norm_counters_;
  at::Tensor images_;
  at::Tensor labels_;
  at::Tensor selected_images_;  // the rows select_samples() chose, or the whole batch
  at::Tensor selected_labels_;
  bool gradients_averaged_ = false;  // since the last zero_grad()
  std::int64_t step_ = 0;
  std::int64_t total_steps_ = 0;
  double base_lr_ = 0;      // the optimizer's rate when the run starts: train.lr
  at::Tensor regularizer_;  // the head's own term r [N] of the last forward(); none: undefined
  at::Tensor correct_;      // 0-dim, of this step's first pass, on the device
  at::Tensor correct_sum_;  // 0-dim, on the device, since the last take_correct()
};

}  // namespace flatface
