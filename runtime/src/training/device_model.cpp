#include "training/device_model.hpp"

#include <ATen/Context.h>
#include <torch/optim/sgd.h>

#include <utility>

#include "training/optimizer.hpp"

namespace flatface {

DeviceModel::DeviceModel() = default;
DeviceModel::DeviceModel(DeviceModel&&) noexcept = default;
DeviceModel& DeviceModel::operator=(DeviceModel&&) noexcept = default;
DeviceModel::~DeviceModel() = default;

DeviceModel place_on_device(std::shared_ptr<Backbone> backbone, std::shared_ptr<MarginHead> head,
                            const TrainSettings& train, const std::string& bn_second_pass,
                            const c10::Device& device, const DataParallel& data_parallel) {
  const bool cuda = device.is_cuda();
  if (cuda) at::globalContext().setBenchmarkCuDNN(true);
  backbone->to(device);
  head->to(device);
  if (cuda) {
    for (auto& p : backbone->parameters())
      if (p.dim() == 4) p.set_data(p.data().contiguous(at::MemoryFormat::ChannelsLast));
  }
  DeviceModel m;
  m.backbone = std::move(backbone);
  m.head = std::move(head);
  m.optimizer = make_sgd(*m.backbone, *m.head, train);
  TrainStepOptions options;
  options.bn_second_pass = bn_second_pass;
  options.bf16_autocast = cuda && train.precision == "bf16";
  options.data_parallel = data_parallel;
  m.step = std::make_unique<TrainStep>(m.backbone, m.head, *m.optimizer, options);
  return m;
}

}  // namespace flatface
