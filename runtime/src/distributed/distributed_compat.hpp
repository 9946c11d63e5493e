// The c10d differences between the libtorch versions we build against, in one place: libtorch 2.0
// split the backends (ProcessGroupGloo, ProcessGroupNCCL) out of ProcessGroup into c10d::Backend,
// which carries the same collective calls. Private to the runtime (plugins never see c10d).
#pragma once

// The c10d headers hide Gloo behind USE_C10D_GLOO, which Debian's libtorch package defines for
// its users and a pip wheel's CMake package may not; every Linux libtorch is built with Gloo.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>

#ifdef FLATFACE_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace flatface::distributed {

#if TORCH_VERSION_MAJOR >= 2
using CollectiveBackend = c10d::Backend;
#else
using CollectiveBackend = c10d::ProcessGroup;
#endif

// libtorch 2.4 made the TCPStore's libuv backend the default, but a libtorch built without libuv
// (Debian's 2.6) refuses it: then the store is opened again on the classic backend. False where
// there is nothing to fall back to.
inline bool store_without_libuv(c10d::TCPStoreOptions& o) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  if (!o.useLibUV) return false;
  o.useLibUV = false;
  return true;
#else
  (void)o;
  return false;
#endif
}

}  // namespace flatface::distributed
