#include "training/checkpoint.hpp"

#include <ATen/core/Dict.h>
#include <ATen/core/ivalue.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/optim/sgd.h>

#include <cstdio>
#include <fstream>
#include <iterator>

#include "plugin_host/factory.hpp"
#include "results/result_store.hpp"
#include "flatface/torch_compat.hpp"
#include "formats/state_dict.hpp"

namespace flatface {

namespace {

constexpr const char* kFormat = "flatface-checkpoint-1";

std::vector<char> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RuntimeError(path + ": cannot open checkpoint");
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

void write_atomically(const std::string& path, const std::vector<char>& bytes) {
  std::string tmp = temporary_path(path);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) throw RuntimeError(tmp + ": cannot write checkpoint");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw RuntimeError(path + ": cannot move the new checkpoint into place");
}

std::vector<at::Tensor> all_parameters(const torch::optim::Optimizer& optimizer) {
  std::vector<at::Tensor> out;
  for (const auto& group : optimizer.param_groups())
    for (const auto& p : group.params()) out.push_back(p);
  return out;
}

c10::impl::GenericList momentum_buffers(torch::optim::Optimizer& optimizer) {
  c10::impl::GenericList list(c10::AnyType::get());
  auto& state = optimizer.state();
  for (const auto& p : all_parameters(optimizer)) {
    auto it = state.find(optimizer_state_key(state, p));
    at::Tensor buffer;
    if (it != state.end()) {
      if (auto* sgd = dynamic_cast<torch::optim::SGDParamState*>(it->second.get()))
        buffer = sgd->momentum_buffer();
    }
    list.push_back(buffer.defined() ? c10::IValue(buffer.cpu()) : c10::IValue());
  }
  return list;
}

void restore_momentum(torch::optim::Optimizer& optimizer, const c10::impl::GenericList& list,
                      const std::string& path) {
  auto params = all_parameters(optimizer);
  if (list.size() != params.size()) {
    throw ConfigError(path + ": checkpoint has optimizer state for " + std::to_string(list.size()) +
                      " parameters, the model has " + std::to_string(params.size()));
  }
  auto& state = optimizer.state();
  state.clear();
  for (std::size_t i = 0; i < params.size(); ++i) {
    c10::IValue v = list.get(i);
    if (v.isNone()) continue;
    auto s = std::make_unique<torch::optim::SGDParamState>();
    s->momentum_buffer(v.toTensor().to(params[i].device()));
    state[optimizer_state_key(state, params[i])] = std::move(s);
  }
}

c10::impl::GenericDict to_generic(const c10::Dict<std::string, at::Tensor>& d) {
  c10::impl::GenericDict out(c10::StringType::get(), c10::TensorType::get());
  for (const auto& kv : d) out.insert(kv.key(), kv.value().cpu());
  return out;
}

c10::Dict<std::string, at::Tensor> from_generic(const c10::IValue& v) {
  c10::Dict<std::string, at::Tensor> out;
  for (const auto& kv : v.toGenericDict()) out.insert(kv.key().toStringRef(), kv.value().toTensor());
  return out;
}

c10::impl::GenericDict read_checkpoint(const std::string& path) {
  c10::IValue root;
  try {
    root = torch::jit::pickle_load(read_file(path));
  } catch (const RuntimeError&) {
    throw;
  } catch (const std::exception& e) {
    throw RuntimeError(path + ": not a readable flatface checkpoint (" +
                       std::string(e.what()).substr(0, 200) + ")");
  }
  if (!root.isGenericDict()) throw RuntimeError(path + ": not a flatface checkpoint");
  auto dict = root.toGenericDict();
  if (!dict.contains("format") || dict.at("format").toStringRef() != kFormat)
    throw RuntimeError(path + ": not a flatface checkpoint (expected format " + kFormat + ")");
  return dict;
}

}  // namespace

void save_checkpoint(const std::string& path, const TrainingState& state, torch::nn::Module& backbone,
                     torch::nn::Module& head, torch::optim::Optimizer& optimizer) {
  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
  d.insert("format", std::string(kFormat));
  d.insert("experiment_toml", state.experiment_toml);
  d.insert("run_id", state.run_id);
  d.insert("epoch", state.epoch);
  d.insert("step_in_epoch", state.step_in_epoch);
  d.insert("global_step", state.global_step);
  d.insert("elapsed_seconds", state.elapsed_seconds);
  d.insert("accumulators", c10::List<double>(state.accumulators));
  d.insert("backbone", to_generic(state_dict(backbone)));
  d.insert("head", to_generic(state_dict(head)));
  d.insert("momentum", momentum_buffers(optimizer));
  c10::List<at::Tensor> perturbation_state;
  for (const auto& t : state.perturbation_state) perturbation_state.push_back(t.cpu());
  d.insert("perturbation_state", perturbation_state);
  d.insert("rng_cpu", at::detail::getDefaultCPUGenerator().get_state());
  write_atomically(path, torch::jit::pickle_save(d));
}

TrainingState load_checkpoint(const std::string& path, torch::nn::Module& backbone,
                              torch::nn::Module& head, torch::optim::Optimizer& optimizer) {
  auto d = read_checkpoint(path);
  TrainingState s;
  s.experiment_toml = d.at("experiment_toml").toStringRef();
  s.run_id = d.at("run_id").toStringRef();
  s.epoch = d.at("epoch").toInt();
  s.step_in_epoch = d.at("step_in_epoch").toInt();
  s.global_step = d.at("global_step").toInt();
  s.elapsed_seconds = d.at("elapsed_seconds").toDouble();
  for (double v : d.at("accumulators").toDoubleList()) s.accumulators.push_back(v);
  load_state_dict(backbone, from_generic(d.at("backbone")), path + " (backbone)");
  load_state_dict(head, from_generic(d.at("head")), path + " (head)");
  restore_momentum(optimizer, d.at("momentum").toList(), path);
  if (d.contains("perturbation_state")) {  // absent from checkpoints of before ABI 3
    auto list = d.at("perturbation_state").toList();
    for (std::size_t i = 0; i < list.size(); ++i)
      s.perturbation_state.push_back(list.get(i).toTensor());
  }
  at::Generator cpu_generator = at::detail::getDefaultCPUGenerator();
  cpu_generator.set_state(d.at("rng_cpu").toTensor());
  return s;
}

c10::Dict<std::string, at::Tensor> load_tensor_dict_from_checkpoint(const std::string& path,
                                                                     const std::string& module) {
  auto d = read_checkpoint(path);
  if (!d.contains(module)) throw RuntimeError(path + ": checkpoint has no '" + module + "'");
  return from_generic(d.at(module));
}

CheckpointModel load_checkpoint_model(const Registry& registry, const std::string& path) {
  auto d = read_checkpoint(path);
  CheckpointModel m;
  m.experiment = parse_experiment(d.at("experiment_toml").toStringRef(), path + " (experiment)");
  m.run_id = d.at("run_id").toStringRef();
  m.epoch = d.at("epoch").toInt();
  // The experiment as the run saw it (a grid may sweep backbone options); as stored when the id
  // is not one of its grid's.
  for (const auto& run : expand_grid(m.experiment))
    if (run.id == m.run_id) {
      m.experiment = run_experiment(m.experiment, run);
      break;
    }
  m.backbone = make_backbone(registry, m.experiment.backbone);
  load_state_dict(*m.backbone, from_generic(d.at("backbone")), path + " (backbone)");
  m.backbone->eval();
  return m;
}

}  // namespace flatface
