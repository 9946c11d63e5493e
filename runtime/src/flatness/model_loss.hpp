// The training loss L_margin (the head's margin cross-entropy, paper eq. 16) of a backbone and
// its head as a LossFunction over all trainable parameters, backbone and class weights, on a fixed
// set of batches. BN layers run in eval mode (running statistics, as PyHessian) or in train mode
// (batch statistics); either way the modules' modes, buffers and head statistics are restored
// when the object goes.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <vector>

#include "flatface/backbone.hpp"
#include "flatface/head.hpp"
#include "flatness/loss_function.hpp"

namespace flatface::flatness {

struct LabelledBatch {
  at::Tensor images;  // [N,3,S,S] on the model's device
  at::Tensor labels;  // [N] int64
};

class ModelLoss {
 public:
  ModelLoss(std::shared_ptr<Backbone> backbone, std::shared_ptr<MarginHead> head,
            std::vector<LabelledBatch> batches, bool batch_norm_train);
  ~ModelLoss();
  ModelLoss(const ModelLoss&) = delete;
  ModelLoss& operator=(const ModelLoss&) = delete;

  const LossFunction& function() const { return function_; }

 private:
  std::shared_ptr<Backbone> backbone_;
  std::shared_ptr<MarginHead> head_;
  std::vector<LabelledBatch> batches_;
  bool backbone_training_, head_training_, head_updates_statistics_;
  std::vector<at::Tensor> buffers_, saved_buffers_;
  LossFunction function_;
};

// All trainable parameters of backbone and head, in that order (as the training step sees them).
ParamVector trainable_parameters(torch::nn::Module& backbone, torch::nn::Module& head);

}  // namespace flatface::flatness
