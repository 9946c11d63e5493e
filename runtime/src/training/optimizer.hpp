// The base optimizer every strategy steps with: SGD over the backbone and the class weights.
#pragma once

#include <torch/optim/sgd.h>

#include <memory>

#include "experiment/experiment.hpp"
#include "flatface/backbone.hpp"
#include "flatface/head.hpp"

namespace flatface {

// SGD with the run's lr, momentum and weight decay. Unless `decay_bn_and_bias`, the 1-d
// parameters (BN weights and biases, biases, PReLU slopes) form a second group without weight
// decay; the class weights and conv/linear weights always decay.
std::unique_ptr<torch::optim::SGD> make_sgd(Backbone& backbone, MarginHead& head,
                                            const TrainSettings& train);

// Sets lr on every parameter group.
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

}  // namespace flatface
