// Every difference between the libtorch versions we build against (Debian's 1.13, CUDA 2.x) is
// guarded here and nowhere else.
#pragma once

#include <torch/version.h>

#include <string>

#define FLATFACE_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||           \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace flatface {

inline std::string torch_version_string() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

}  // namespace flatface
