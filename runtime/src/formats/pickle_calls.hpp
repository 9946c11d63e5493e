// What a pickle may call, and what each call makes: numpy's reconstruction of one-dimensional
// uint8/bool arrays, their dtypes and scalars, and the latin-1 encoding (and the empty bytes())
// with which a Python 3 protocol-2 pickle writes bytes. This allow-list is the reader's safety:
// the opcode machine (pickle.cpp) hands GLOBAL, REDUCE and BUILD here, and nothing here imports
// or runs anything; a callable is only recognised by its name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "formats/pickle.hpp"

namespace flatface::pickle {

// The opcode being run, for the message of a refusal: "lfw.bin: unsupported pickle opcode 0x63
// ('GLOBAL') at byte offset 2: ...". Throws flatface::RuntimeError.
struct OpcodeSite {
  const std::string& source;
  std::uint8_t code;
  std::size_t offset;

  std::string where() const;  // "opcode 0x63 ('GLOBAL') at byte offset 2"
  [[noreturn]] void unsupported(const std::string& detail = "") const;
  [[noreturn]] void malformed(const std::string& detail) const;
};

ObjectPtr make_object(Object::Type type);
ObjectPtr make_integer(std::int64_t v, Object::Type type = Object::Type::integer);
ObjectPtr make_blob(std::string data, Object::Type type, bool python2_str = false);

// "bytes", "numpy array", "global 'numpy.dtype'": how messages name an object's type.
std::string type_name(const Object& o);

// Whether GLOBAL may name "module.name".
bool is_allowed_global(const std::string& qualified);

// REDUCE: `callable(*args)`, for an allowed callable and the arguments numpy and _codecs pass;
// an array or dtype comes back unbuilt, for BUILD to finish.
ObjectPtr call(const Object& callable, const Object& args, const OpcodeSite& site);

// BUILD: sets the state of the unbuilt array or dtype `target`.
void build(Object& target, const Object& state, const OpcodeSite& site);

}  // namespace flatface::pickle
