// Python's torch.save files, read without Python and without executing anything: the zip format
// (torch >= 1.6) and the legacy format before it, which `_use_new_zipfile_serialization=False`
// still writes and older model zoos hold.
#pragma once

#include <ATen/core/ivalue.h>

#include <string>

namespace flatface {

// The saved object with its tensors on the CPU, whatever device they were saved from (as
// torch.load(path, map_location="cpu")); a top-level state-dict OrderedDict becomes a plain dict.
// Throws RuntimeError naming the path on anything else.
c10::IValue read_torch_file(const std::string& path);

}  // namespace flatface
