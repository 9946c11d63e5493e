// The parts of torch_compat.hpp that need heavy ATen headers.
#include "flatface/torch_compat.hpp"

#include <ATen/autocast_mode.h>

namespace flatface {

AutocastState cuda_autocast() {
#if FLATFACE_TORCH_AT_LEAST(2, 4)
  return {at::autocast::is_autocast_enabled(at::kCUDA),
          at::autocast::get_autocast_dtype(at::kCUDA)};
#else
  return {at::autocast::is_enabled(), at::autocast::get_autocast_gpu_dtype()};
#endif
}

void set_cuda_autocast(AutocastState state) {
#if FLATFACE_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(at::kCUDA, state.enabled);
  at::autocast::set_autocast_dtype(at::kCUDA, state.dtype);
#else
  at::autocast::set_enabled(state.enabled);
  at::autocast::set_autocast_gpu_dtype(state.dtype);
#endif
}

}  // namespace flatface
