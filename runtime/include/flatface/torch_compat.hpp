// Every difference between the libtorch versions we build against (Debian 12's 1.13, Debian 13's
// 2.6, a CUDA wheel's 2.x) is guarded here and in its companion runtime/src/plugin_host/torch_compat.cpp, and
// nowhere else.
#pragma once

#include <c10/core/ScalarType.h>
#include <torch/version.h>

#include <sstream>
#include <string>
#include <type_traits>

#define FLATFACE_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||           \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace flatface {

inline std::string torch_version_string() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

// torch::optim::Optimizer::state() is keyed by the parameter's TensorImpl: as its address printed
// to a string in libtorch 1.x, as the pointer itself in later versions.
template <typename StateMap, typename TensorLike>
typename StateMap::key_type optimizer_state_key(const StateMap&, const TensorLike& parameter) {
  using Key = typename StateMap::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream os;
    os << parameter.unsafeGetTensorImpl();
    return os.str();
  } else {
    return static_cast<Key>(parameter.unsafeGetTensorImpl());
  }
}

// CUDA autocast's switch and dtype. libtorch 2.4 replaced the CUDA-only calls (set_enabled,
// set_autocast_gpu_dtype) with per-device ones; defined in libflatface (torch_compat.cpp), which
// keeps <ATen/autocast_mode.h> out of this header.
struct AutocastState {
  bool enabled = false;
  c10::ScalarType dtype = c10::ScalarType::BFloat16;
};
AutocastState cuda_autocast();
void set_cuda_autocast(AutocastState state);

}  // namespace flatface
