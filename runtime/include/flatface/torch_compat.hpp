// Every difference between the libtorch versions we build against (Debian's 1.13, CUDA 2.x) is
// guarded here and nowhere else.
#pragma once

#include <torch/version.h>

#include <sstream>
#include <string>
#include <type_traits>

#define FLATFACE_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||           \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// libtorch 2.4 replaced at::autocast's CUDA-only calls (set_enabled, set_autocast_gpu_dtype) with
// per-device ones (set_autocast_enabled(device, on), set_autocast_dtype(device, dtype)).
#define FLATFACE_AUTOCAST_PER_DEVICE FLATFACE_TORCH_AT_LEAST(2, 4)

namespace flatface {

inline std::string torch_version_string() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

// torch::optim::Optimizer::state() is keyed by the parameter's TensorImpl: as its address printed to
// a string in libtorch 1.x, as the pointer itself in later versions.
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

}  // namespace flatface
