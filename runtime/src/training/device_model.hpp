// A run's backbone and head made ready to train on a device: moved there (convolution weights
// channels-last on CUDA, cuDNN autotuning on), SGD over both, and the TrainStep with the setup's
// BN policy, the experiment's precision and the run's ranks. Shared by the trainer and `flatface
// bench`.
#pragma once

#include <c10/core/Device.h>

#include <memory>
#include <string>

#include "experiment/experiment.hpp"
#include "training/train_step.hpp"

namespace torch::optim {
class SGD;
}

namespace flatface {

struct DeviceModel {
  std::shared_ptr<Backbone> backbone;
  std::shared_ptr<MarginHead> head;
  std::unique_ptr<torch::optim::SGD> optimizer;  // declared before `step`, which refers to it
  std::unique_ptr<TrainStep> step;

  DeviceModel();
  DeviceModel(DeviceModel&&) noexcept;
  DeviceModel& operator=(DeviceModel&&) noexcept;
  ~DeviceModel();
};

// `data_parallel`: how the step joins the run's other ranks (by default, one process).
DeviceModel place_on_device(std::shared_ptr<Backbone> backbone, std::shared_ptr<MarginHead> head,
                            const TrainSettings& train, const std::string& bn_second_pass,
                            const c10::Device& device, const DataParallel& data_parallel = {});

}  // namespace flatface
