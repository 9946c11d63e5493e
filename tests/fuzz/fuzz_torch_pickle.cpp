// libFuzzer target for the scanners that make torch.save pickles readable by libtorch
// (formats/ordered_dict_pickle.hpp): each rewrite runs on the bytes, and the rewrites run again on
// what they return, as torch_file.cpp chains them. They only scan and copy opcodes, so a finding
// is any sanitizer report, a crash or a hang.
#include <cstddef>
#include <cstdint>
#include <string>

#include "formats/ordered_dict_pickle.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string pickle(reinterpret_cast<const char*>(data), size);
  (void)flatface::pickle_end(pickle, 0);
  if (auto batched = flatface::single_items_as_batches(pickle)) pickle = std::move(*batched);
  if (auto plain = flatface::ordered_dict_as_dict(pickle)) {
    pickle = std::move(*plain);
  } else if (auto objects = flatface::objects_as_dicts(pickle)) {
    (void)flatface::objects_as_dicts(*objects);  // a second pass finds nothing foreign left
  }
  return 0;
}
