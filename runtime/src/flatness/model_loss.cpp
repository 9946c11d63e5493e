#include "flatness/model_loss.hpp"

#include <ATen/core/grad_mode.h>

#include <utility>

#include "flatface/step_ops.hpp"
#include "kernels/convolution_check.hpp"

namespace flatface::flatness {

ParamVector trainable_parameters(torch::nn::Module& backbone, torch::nn::Module& head) {
  ParamVector out;
  for (torch::nn::Module* m : {&backbone, &head})
    for (const auto& p : m->parameters())
      if (p.requires_grad()) out.push_back(p);
  return out;
}

ModelLoss::ModelLoss(std::shared_ptr<Backbone> backbone, std::shared_ptr<MarginHead> head,
                     std::vector<LabelledBatch> batches, bool batch_norm_train)
    : backbone_(std::move(backbone)),
      head_(std::move(head)),
      batches_(std::move(batches)),
      backbone_training_(backbone_->is_training()),
      head_training_(head_->is_training()),
      head_updates_statistics_(head_->update_statistics()) {
  ensure_trusted_cpu_convolutions();  // before the first gradient (kernels/convolution_check.hpp)
  for (torch::nn::Module* m : {static_cast<torch::nn::Module*>(backbone_.get()),
                               static_cast<torch::nn::Module*>(head_.get())}) {
    for (const auto& b : m->buffers()) {
      buffers_.push_back(b);
      saved_buffers_.push_back(b.detach().clone());
    }
  }
  backbone_->train(batch_norm_train);
  head_->train(batch_norm_train);
  head_->set_update_statistics(false);  // AdaFace's running norm statistics stay as trained
  function_.parameters = trainable_parameters(*backbone_, *head_);
  function_.parts = batches_.size();
  function_.loss = [this](std::size_t b) {
    const LabelledBatch& batch = batches_.at(b);
    at::Tensor embeddings = backbone_->forward(batch.images);
    at::Tensor logits = head_->logits(embeddings, batch.labels);
    // L_margin (eq. 16) as training descends it: with the head's own term (MagFace's), if any.
    return perturbations::margin_loss(logits, batch.labels,
                                      head_->regularizer(embeddings, batch.labels));
  };
}

ModelLoss::~ModelLoss() {
  at::NoGradGuard no_grad;
  for (std::size_t i = 0; i < buffers_.size(); ++i) buffers_[i].copy_(saved_buffers_[i]);
  backbone_->train(backbone_training_);
  head_->train(head_training_);
  head_->set_update_statistics(head_updates_statistics_);
}

}  // namespace flatface::flatness
