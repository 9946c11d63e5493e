// A margin head owns the class-weight matrix [C,D] and turns embeddings into scaled,
// margin-modified logits; the loss is cross-entropy of those logits (paper eq. 16).
#pragma once

#include <torch/nn/module.h>

#include <cstdint>
#include <memory>

#include "flatface/collectives.hpp"
#include "flatface/options.hpp"

namespace flatface {

// Where a training step stands, for heads whose margin follows the step: SphereFace's λ schedule,
// ElasticFace's margins drawn per (seed, step, row).
struct HeadStep {
  // This step's index in the run, from 0 (a resumed run continues the count), and the steps of
  // the whole run (0 where the host does not know).
  std::int64_t step = 0;
  std::int64_t total_steps = 0;
  // Data-parallel runs: this rank's first row in the global batch, and the global batch's rows
  // (in one process 0 and the batch's rows), so that a row draws what it draws in one process.
  std::int64_t first_row = 0;
  std::int64_t global_rows = 0;
};

class MarginHead : public torch::nn::Module {
 public:
  // embeddings [N,D] unnormalised, labels [N] int64 -> logits [N,C].
  virtual torch::Tensor logits(const torch::Tensor& embeddings, const torch::Tensor& labels) = 0;
  // Plain cosines [N,C] between normalised embeddings and class weights (training accuracy).
  virtual torch::Tensor cosine(const torch::Tensor& embeddings) = 0;
  // Called by the host once per training step, before its first pass (never between the passes
  // of a step). State that must outlive a checkpoint belongs in a registered buffer.
  virtual void begin_step(const HeadStep& /*step*/) {}
  // The head's own loss term beside the cross-entropy, per sample [N] with autograd (MagFace's
  // λ_g g(a_i)); undefined (the default) for heads that have none. The loss a strategy descends
  // is L = mean_i (CE(logits_i, y_i) + r_i) (step_ops.hpp: margin_loss(ctx, logits)).
  virtual torch::Tensor regularizer(const torch::Tensor& /*embeddings*/,
                                    const torch::Tensor& /*labels*/) {
    return {};
  }
  // Heads with running statistics (AdaFace) update them only while this is true; the step
  // protocol turns it off for the second (perturbed) pass.
  virtual void set_update_statistics(bool update) { update_statistics_ = update; }
  bool update_statistics() const { return update_statistics_; }

 private:
  bool update_statistics_ = true;
};

struct HeadArgs {
  Options options;  // the setup's head table, less `plugin`
  std::int64_t embedding_dim = 512;
  std::int64_t num_classes = 0;
  // The ranks that train the run (heads whose statistics span the global batch reduce over
  // them); outside training, one process. Outlives the head.
  Collectives* collectives = &one_process();
  std::uint64_t seed = 0;  // the run's seed, for heads that draw random numbers (ElasticFace)
};

using HeadFactory = std::shared_ptr<MarginHead> (*)(const HeadArgs&);

}  // namespace flatface
