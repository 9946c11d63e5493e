// A margin head owns the class-weight matrix [C,D] and turns embeddings into scaled,
// margin-modified logits; the loss is cross-entropy of those logits (paper eq. 16).
#pragma once

#include <torch/nn/module.h>

#include <cstdint>
#include <memory>

#include "flatface/collectives.hpp"
#include "flatface/options.hpp"

namespace flatface {

class MarginHead : public torch::nn::Module {
 public:
  // embeddings [N,D] unnormalised, labels [N] int64 -> logits [N,C].
  virtual torch::Tensor logits(const torch::Tensor& embeddings, const torch::Tensor& labels) = 0;
  // Plain cosines [N,C] between normalised embeddings and class weights (training accuracy).
  virtual torch::Tensor cosine(const torch::Tensor& embeddings) = 0;
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
};

using HeadFactory = std::shared_ptr<MarginHead> (*)(const HeadArgs&);

}  // namespace flatface
