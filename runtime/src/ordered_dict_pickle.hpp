// Python's `module.state_dict()` is a collections.OrderedDict carrying a `_metadata` attribute;
// torch.save pickles it as OrderedDict() + SETITEMS + BUILD(state), which libtorch's unpickler
// cannot rebuild. This rewrites such a pickle into the pickle of a plain dict with the same items,
// so that weights saved by insightface and friends load without a Python round trip.
#pragma once

#include <optional>
#include <string>

namespace flatface {

// `pickle` is the data.pkl record of a torch.save zip. Returns the rewritten pickle, or nullopt
// when it is not a protocol-2 pickle of a top-level OrderedDict (then it is left to libtorch).
// The opcodes are only scanned, never executed.
std::optional<std::string> ordered_dict_as_dict(const std::string& pickle);

}  // namespace flatface
