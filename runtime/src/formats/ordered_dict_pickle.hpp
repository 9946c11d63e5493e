// Scanning (never executing) the pickles of torch.save files, with the opcode table of
// formats/pickle_opcodes.hpp.
//
// Python's `module.state_dict()` is a collections.OrderedDict carrying a `_metadata` attribute;
// torch.save pickles it as OrderedDict() + SETITEMS + BUILD(state), which libtorch's unpickler
// cannot rebuild. ordered_dict_as_dict rewrites such a pickle into the pickle of a plain dict with
// the same items, so that weights saved by insightface and friends load without a Python round
// trip. single_items_as_batches covers two more opcodes libtorch lacks. The legacy (non-zip)
// format is several pickles in a row followed by raw storage bytes: pickle_end finds where each
// one stops.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace flatface {

// `pickle` is the data.pkl record of a torch.save zip. Returns the rewritten pickle, or nullopt
// when it is not a protocol-2 pickle of a top-level OrderedDict (then it is left to libtorch).
// The opcodes are only scanned, never executed.
std::optional<std::string> ordered_dict_as_dict(const std::string& pickle);

// libtorch's unpickler (1.13) lacks SETITEM and APPEND, which Python writes for a dict or a list
// of a single item (`torch.save({"w": w})`, the legacy format's list of one storage key). Returns
// the pickle with each of them in its batch form (MARK ... SETITEMS / APPENDS), or nullopt when
// there is none or an opcode is not in the table (then the pickle is left as it is).
std::optional<std::string> single_items_as_batches(const std::string& pickle);

// The keys under which objects_as_dicts keeps what an object was built from.
inline constexpr const char* kPickledArgs = "__pickle_args__";
inline constexpr const char* kPickledState = "__pickle_state__";

// Checkpoints beyond a bare state dict (PyTorch Lightning's, with its nested OrderedDicts,
// AttributeDict hyper-parameters and the scheduler's collections.Counter) hold objects of classes
// libtorch's unpickler cannot rebuild. Returns the pickle with every object of a class outside
// torch's own modules turned into a plain dict, without executing anything: the items a dict
// subclass such as OrderedDict sets, plus its constructor's arguments under kPickledArgs (when
// not empty) and the state BUILD gives it under kPickledState. Tensors and storages stay as they
// are. nullopt when libtorch needs no rewrite (no such class, or only the empty OrderedDict()
// of each tensor's hooks, which it reads as None), or an opcode is not in the scanner's table.
std::optional<std::string> objects_as_dicts(const std::string& pickle);

// The offset just past the STOP of the pickle that starts at `begin` in `data`, or nullopt when an
// opcode is not one torch.save's protocol-2 pickles use or the pickle runs past the end of `data`.
std::optional<std::size_t> pickle_end(const std::string& data, std::size_t begin);

}  // namespace flatface
