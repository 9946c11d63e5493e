#include "training/optimizer.hpp"

#include <utility>
#include <vector>

namespace flatface {

std::unique_ptr<torch::optim::SGD> make_sgd(Backbone& backbone, MarginHead& head,
                                            const TrainSettings& train) {
  std::vector<at::Tensor> decayed;
  std::vector<at::Tensor> not_decayed;
  for (const torch::nn::Module* m :
       {static_cast<torch::nn::Module*>(&backbone), static_cast<torch::nn::Module*>(&head)}) {
    for (const auto& p : m->parameters()) {
      if (!p.requires_grad()) continue;
      (train.decay_bn_and_bias || p.dim() > 1 ? decayed : not_decayed).push_back(p);
    }
  }
  auto options =
      torch::optim::SGDOptions(train.lr).momentum(train.momentum).weight_decay(train.weight_decay);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!decayed.empty()) {
    groups.emplace_back(std::move(decayed), std::make_unique<torch::optim::SGDOptions>(options));
  }
  if (!not_decayed.empty()) {
    auto no_decay = options;
    no_decay.weight_decay(0.0);
    groups.emplace_back(std::move(not_decayed),
                        std::make_unique<torch::optim::SGDOptions>(no_decay));
  }
  return std::make_unique<torch::optim::SGD>(std::move(groups), options);
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

}  // namespace flatface
