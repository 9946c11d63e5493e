#include "formats/state_dict.hpp"

#include <ATen/core/ivalue.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "flatface/options.hpp"
#include "formats/ordered_dict_pickle.hpp"
#include "formats/torch_file.hpp"

namespace flatface {

namespace {

std::string shape_str(const at::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

// The first few keys: a wrong depth or width mismatches hundreds of them, and the first ones
// already show which part of the model differs.
std::string join_keys(const std::vector<std::string>& keys) {
  constexpr std::size_t kShown = 5;
  std::string out;
  for (std::size_t i = 0; i < std::min(keys.size(), kShown); ++i) {
    out += (i == 0 ? "" : ", ") + keys[i];
  }
  if (keys.size() > kShown) out += " … and " + std::to_string(keys.size() - kShown) + " more";
  return out;
}

}  // namespace

TensorDict state_dict(const torch::nn::Module& module) {
  TensorDict dict;
  for (const auto& item : module.named_modules(/*name_prefix=*/"", /*include_self=*/true)) {
    const std::string prefix = item.key().empty() ? "" : item.key() + ".";
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false)) {
      dict.insert(prefix + p.key(), p.value());
    }
    for (const auto& b : item.value()->named_buffers(/*recurse=*/false)) {
      dict.insert(prefix + b.key(), b.value());
    }
  }
  return dict;
}

void load_state_dict(torch::nn::Module& module, const TensorDict& dict, const std::string& source) {
  const TensorDict own = state_dict(module);
  std::vector<std::string> missing, unexpected, mismatched;
  for (const auto& entry : own) {
    auto it = dict.find(entry.key());
    if (it == dict.end()) {
      missing.push_back(entry.key());
    } else if (it->value().sizes() != entry.value().sizes()) {
      mismatched.push_back(entry.key() + " (file " + shape_str(it->value()) + ", model " +
                           shape_str(entry.value()) + ")");
    }
  }
  for (const auto& entry : dict) {
    if (own.find(entry.key()) == own.end()) unexpected.push_back(entry.key());
  }
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::string message = source + ": weights do not fit the model";
    if (!missing.empty()) message += "; missing keys: " + join_keys(missing);
    if (!unexpected.empty()) message += "; unexpected keys: " + join_keys(unexpected);
    if (!mismatched.empty()) message += "; shape mismatch: " + join_keys(mismatched);
    throw ConfigError(message);
  }
  torch::NoGradGuard no_grad;
  for (const auto& entry : own) {
    auto target = entry.value();  // shares storage with the module
    target.copy_(dict.at(entry.key()));
  }
}

namespace {

// torch::jit::pickle_save's zip layout (data.pkl, data/<storage index>, version), but the dict is
// pickled without TorchScript's type tag: the tag is a call to torch.jit._pickle.restore_type_tag,
// which Python's torch.load refuses by default since 2.6 (weights_only=True).
std::vector<char> zip_of_untagged_pickle(const c10::IValue& value) {
  std::vector<char> pickle;
  torch::jit::Pickler pickler(
      [&](const char* bytes, std::size_t n) { pickle.insert(pickle.end(), bytes, bytes + n); },
      /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
      /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
  pickler.stop();

  std::vector<char> zip;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* bytes, std::size_t n) {
    const char* begin = static_cast<const char*>(bytes);
    zip.insert(zip.end(), begin, begin + n);
    return n;
  });
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  // The pickle names each storage by its index in tensorData().
  const auto& tensors = pickler.tensorData();
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto data = torch::jit::getWriteableTensorData(tensors[i]);
    writer.writeRecord("data/" + std::to_string(i), data.data(), data.sizeInBytes());
  }
  writer.writeEndOfFile();
  return zip;
}

}  // namespace

void save_tensor_dict(const std::string& path, const TensorDict& dict) {
  // Detached CPU copies: the file must not depend on the device or autograd state.
  TensorDict cpu;
  for (const auto& entry : dict) {
    cpu.insert(entry.key(), entry.value().detach().to(at::kCPU).contiguous());
  }
  const std::vector<char> bytes = zip_of_untagged_pickle(c10::IValue(cpu));
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::error_code ignored;
      std::filesystem::remove(tmp, ignored);
      throw RuntimeError(path + ": cannot write tensor file (" + tmp + ")");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw RuntimeError(path + ": cannot rename " + tmp + " into place: " + ec.message());
  }
}

namespace {

// A dict of string -> tensor; with a prefix, entries without it may be anything and are left out.
TensorDict tensors_of(const c10::impl::GenericDict& dict, const std::string& path,
                      const std::string& prefix) {
  TensorDict out;
  for (const auto& entry : dict) {
    if (!entry.key().isString()) {
      if (!prefix.empty()) continue;
      throw RuntimeError(path + ": a key of the dict is a " + entry.key().tagKind() +
                         ", expected a string");
    }
    const std::string& key = entry.key().toStringRef();
    if (key.rfind(prefix, 0) != 0) continue;
    if (!entry.value().isTensor()) {
      if (key == kPickledState) continue;  // an OrderedDict's _metadata (objects_as_dicts)
      throw RuntimeError(path + ": entry '" + key + "' is a " + entry.value().tagKind() +
                         ", expected a tensor");
    }
    out.insert(key.substr(prefix.size()), entry.value().toTensor());
  }
  return out;
}

c10::IValue read_existing(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) {
    throw RuntimeError(path + ": no such tensor file");
  }
  return read_torch_file(path);
}

}  // namespace

TensorDict load_tensor_dict(const std::string& path) {
  const c10::IValue value = read_existing(path);
  if (!value.isGenericDict()) {
    throw RuntimeError(path + ": expected a dict of name -> tensor, found " + value.tagKind());
  }
  return tensors_of(value.toGenericDict(), path, "");
}

TensorDict load_weights_dict(const std::string& path, const WeightsSelection& selection) {
  const c10::IValue value = read_existing(path);
  if (!value.isGenericDict()) {
    throw RuntimeError(path + ": expected a state dict (name -> tensor) or a checkpoint holding "
                       "one, found " + value.tagKind());
  }
  c10::impl::GenericDict dict = value.toGenericDict();
  std::string where = path;
  for (const char* key : {"state_dict", "state_dict_backbone"}) {
    const auto inner = dict.find(std::string(key));
    if (inner != dict.end() && inner->value().isGenericDict()) {
      dict = inner->value().toGenericDict();
      where = path + " ['" + key + "']";
      break;
    }
  }
  TensorDict out = tensors_of(dict, where, selection.prefix);
  if (out.size() == 0 && !selection.prefix.empty()) {
    std::vector<std::string> names;
    for (const auto& entry : dict) {
      if (entry.key().isString() && entry.key().toStringRef() != kPickledState)
        names.push_back(entry.key().toStringRef());
    }
    throw ConfigError(where + ": no entry's name starts with the prefix '" + selection.prefix +
                      "' (its entries: " + join_keys(names) + ")");
  }
  return out;
}

void load_weights(torch::nn::Module& module, const std::string& path,
                  const WeightsSelection& selection) {
  const std::string source =
      selection.prefix.empty() ? path : path + " (entries '" + selection.prefix + "*')";
  load_state_dict(module, load_weights_dict(path, selection), source);
}

}  // namespace flatface
