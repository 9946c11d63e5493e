// A safe reader for the subset of Python's pickle format that insightface verification files use,
// and a writer for `(list of bytes, list of bools)`. The reader never imports or calls anything:
// GLOBAL/REDUCE/BUILD are accepted only for numpy's own array and dtype reconstruction (uint8 and
// bool, one dimension) and `_codecs.encode(text, 'latin1')`, which a Python 3 protocol-2 pickle
// uses for bytes. Everything else is refused with the opcode, its name and its byte offset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace flatface::pickle {

struct Object;
using ObjectPtr = std::shared_ptr<Object>;

struct Object {
  enum class Type {
    none,
    boolean,  // `integer` is 0 or 1
    integer,
    bytes,   // `data`; Python 3 bytes, bytearray or a Python 2 str (`python2_str`)
    text,    // `data` as UTF-8
    list,    // `items`
    tuple,   // `items`
    array,   // numpy 1-D array: `dtype` ("uint8" | "bool"), elements in `data`
    global,  // an allowed callable, `data` = "module.name"; only meaningful inside the reader
    dtype,   // a numpy dtype, `dtype` = "uint8" | "bool"; only meaningful inside the reader
  };
  Type type = Type::none;
  std::int64_t integer = 0;
  std::string data;
  std::vector<ObjectPtr> items;
  std::string dtype;
  bool python2_str = false;    // bytes that came from SHORT_BINSTRING/BINSTRING
  bool built = true;           // false between numpy's REDUCE and its BUILD
  bool contains_list = false;  // a tuple holding a list at any depth (lists never nest in lists)

  Object() = default;
  explicit Object(Type t) : type(t) {}
  Object(const Object&) = delete;
  Object& operator=(const Object&) = delete;
  // Releases nested tuples iteratively, so that a deeply nested pickle cannot overflow the stack.
  ~Object();
};

struct LoadResult {
  ObjectPtr value;
  int protocol = 0;  // from PROTO; 0 or 1 when absent
};

// Parses `size` bytes; `source` (usually the file name) prefixes every error message.
// Throws flatface::RuntimeError, e.g. "lfw.bin: unsupported pickle opcode 0x63 ('GLOBAL') at byte
// offset 2: global 'os.system' is not allowed ...".
LoadResult load(const std::uint8_t* bytes, std::size_t size, const std::string& source);

// A protocol-2 pickle of the tuple `(images, issame)`: images as Python 2 str (SHORT_BINSTRING /
// BINSTRING), flags as True/False, so that Python 2 `pickle.load(f)` and Python 3
// `pickle.load(f, encoding='bytes')` both return lists of bytes and bools, like the distributed
// insightface files.
std::vector<std::uint8_t> dump_bytes_and_bools(const std::vector<std::vector<std::uint8_t>>& images,
                                               const std::vector<bool>& flags);

}  // namespace flatface::pickle
