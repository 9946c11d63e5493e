#include "formats/pickle_calls.hpp"

#include <cstdio>
#include <unordered_map>
#include <vector>

#include "flatface/options.hpp"
#include "formats/pickle_opcodes.hpp"

namespace flatface::pickle {
namespace {

// The only callables a pickle may name: numpy's reconstruction of arrays, dtypes and scalars, and
// the latin-1 encoding (and empty bytes()) a Python 3 protocol-2 pickle uses for bytes.
enum class Callable { reconstruct, ndarray, dtype, scalar, frombuffer, codecs_encode, bytes };

bool allowed_global(const std::string& qualified, Callable* role) {
  static const std::unordered_map<std::string, Callable> allowed = {
      {"numpy.core.multiarray._reconstruct", Callable::reconstruct},
      {"numpy._core.multiarray._reconstruct", Callable::reconstruct},
      {"numpy.ndarray", Callable::ndarray},
      {"numpy.dtype", Callable::dtype},
      {"numpy.core.multiarray.scalar", Callable::scalar},
      {"numpy._core.multiarray.scalar", Callable::scalar},
      {"numpy.core.numeric._frombuffer", Callable::frombuffer},
      {"numpy._core.numeric._frombuffer", Callable::frombuffer},
      {"_codecs.encode", Callable::codecs_encode},
      {"__builtin__.bytes", Callable::bytes},  // bytes() is how protocol 2 writes b''
      {"builtins.bytes", Callable::bytes},
  };
  auto it = allowed.find(qualified);
  if (it == allowed.end()) return false;
  if (role) *role = it->second;
  return true;
}

// numpy type strings for the two element types we accept.
std::string dtype_from_typestr(std::string s) {
  if (!s.empty() && (s[0] == '|' || s[0] == '<' || s[0] == '>' || s[0] == '=')) s.erase(0, 1);
  if (s == "u1" || s == "uint8" || s == "B") return "uint8";
  if (s == "b1" || s == "bool" || s == "?") return "bool";
  return "";
}

// UTF-8 text whose code points are all below 256, as latin-1 bytes.
std::string latin1(const std::string& utf8, const OpcodeSite& site) {
  std::string out;
  for (std::size_t i = 0; i < utf8.size(); ++i) {
    auto c = static_cast<unsigned char>(utf8[i]);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if ((c == 0xc2 || c == 0xc3) && i + 1 < utf8.size() &&
               (static_cast<unsigned char>(utf8[i + 1]) & 0xc0) == 0x80) {
      auto c2 = static_cast<unsigned char>(utf8[++i]);
      out.push_back(static_cast<char>(((c & 0x03) << 6) | (c2 & 0x3f)));
    } else {
      site.malformed("text for _codecs.encode(..., 'latin1') has a character above U+00FF");
    }
  }
  return out;
}

const Object& arg(const std::vector<ObjectPtr>& args, std::size_t i, Object::Type type,
                  const char* what, const OpcodeSite& site) {
  if (i >= args.size() || args[i]->type != type)
    site.unsupported(std::string("unexpected arguments for numpy reconstruction: expected ") +
                     what + " as argument " + std::to_string(i + 1));
  return *args[i];
}

std::uint64_t length_1d(const Object& shape, const OpcodeSite& site) {
  if (shape.items.size() != 1 || shape.items[0]->type != Object::Type::integer ||
      shape.items[0]->integer < 0)
    site.unsupported("only one-dimensional numpy arrays are supported");
  return static_cast<std::uint64_t>(shape.items[0]->integer);
}

const std::string& byte_payload(const Object& o, const OpcodeSite& site) {
  if (o.type != Object::Type::bytes)
    site.unsupported("numpy array data must be bytes, got " + type_name(o));
  return o.data;
}

}  // namespace

std::string OpcodeSite::where() const {
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02x", code);
  return std::string("opcode ") + hex + " ('" + opcode_name(code) + "') at byte offset " +
         std::to_string(offset);
}

void OpcodeSite::unsupported(const std::string& detail) const {
  throw RuntimeError(source + ": unsupported pickle " + where() +
                     (detail.empty() ? "" : ": " + detail));
}

void OpcodeSite::malformed(const std::string& detail) const {
  throw RuntimeError(source + ": malformed pickle at " + where() + ": " + detail);
}

ObjectPtr make_object(Object::Type type) {
  return std::make_shared<Object>(type);
}

ObjectPtr make_integer(std::int64_t v, Object::Type type) {
  auto o = make_object(type);
  o->integer = v;
  return o;
}

ObjectPtr make_blob(std::string data, Object::Type type, bool python2_str) {
  auto o = make_object(type);
  o->data = std::move(data);
  o->python2_str = python2_str;
  return o;
}

std::string type_name(const Object& o) {
  switch (o.type) {
    case Object::Type::none:
      return "None";
    case Object::Type::boolean:
      return "bool";
    case Object::Type::integer:
      return "int";
    case Object::Type::bytes:
      return "bytes";
    case Object::Type::text:
      return "str";
    case Object::Type::list:
      return "list";
    case Object::Type::tuple:
      return "tuple";
    case Object::Type::array:
      return "numpy array";
    case Object::Type::global:
      return "global '" + o.data + "'";
    case Object::Type::dtype:
      return "numpy dtype";
  }
  return "object";
}

bool is_allowed_global(const std::string& qualified) {
  return allowed_global(qualified, nullptr);
}

ObjectPtr call(const Object& callable, const Object& args, const OpcodeSite& site) {
  Callable role;
  if (callable.type != Object::Type::global || !allowed_global(callable.data, &role))
    site.unsupported("REDUCE may only call numpy's array reconstruction, not a " +
                     type_name(callable));
  if (args.type != Object::Type::tuple) site.malformed("REDUCE arguments must be a tuple");
  const auto& a = args.items;
  switch (role) {
    case Callable::reconstruct: {  // _reconstruct(ndarray, (0,), b'b'); BUILD fills it in
      const Object& cls = arg(a, 0, Object::Type::global, "numpy.ndarray", site);
      if (cls.data != "numpy.ndarray" || a.size() != 3)
        site.unsupported("_reconstruct may only build a numpy.ndarray");
      auto o = make_object(Object::Type::array);
      o->built = false;
      return o;
    }
    case Callable::dtype: {  // dtype('u1', False, True)
      if (a.empty() || (a[0]->type != Object::Type::text && a[0]->type != Object::Type::bytes))
        site.unsupported("numpy.dtype needs a type string");
      std::string d = dtype_from_typestr(a[0]->data);
      if (d.empty())
        site.unsupported("numpy dtype '" + a[0]->data + "' (only uint8 and bool arrays are read)");
      auto o = make_object(Object::Type::dtype);
      o->dtype = d;
      o->built = false;
      return o;
    }
    case Callable::scalar: {  // scalar(dtype, b'\x01')
      const Object& dt = arg(a, 0, Object::Type::dtype, "a numpy dtype", site);
      const std::string& data = byte_payload(arg(a, 1, Object::Type::bytes, "bytes", site), site);
      if (data.size() != 1) site.unsupported("a numpy scalar must be one byte");
      auto v = static_cast<unsigned char>(data[0]);
      if (dt.dtype == "bool") return make_integer(v != 0 ? 1 : 0, Object::Type::boolean);
      return make_integer(v);
    }
    case Callable::frombuffer: {  // _frombuffer(buffer, dtype, shape, order)
      const std::string& data =
          byte_payload(arg(a, 0, Object::Type::bytes, "a buffer", site), site);
      const Object& dt = arg(a, 1, Object::Type::dtype, "a numpy dtype", site);
      std::uint64_t n = length_1d(arg(a, 2, Object::Type::tuple, "a shape tuple", site), site);
      if (data.size() != n) site.malformed("numpy array data does not match its shape");
      auto o = make_object(Object::Type::array);
      o->dtype = dt.dtype;
      o->data = data;
      return o;
    }
    case Callable::codecs_encode: {  // encode('\xff\xd8...', 'latin1') == b'\xff\xd8...'
      const Object& text = arg(a, 0, Object::Type::text, "text", site);
      const Object& enc = arg(a, 1, Object::Type::text, "an encoding", site);
      if (a.size() != 2 || (enc.data != "latin1" && enc.data != "latin-1"))
        site.unsupported("_codecs.encode is only read with the 'latin1' encoding");
      return make_blob(latin1(text.data, site), Object::Type::bytes);
    }
    case Callable::bytes:  // only the empty call: bytes() == b''
      if (!a.empty()) site.unsupported("bytes(...) is only read without arguments");
      return make_blob("", Object::Type::bytes);
    case Callable::ndarray:
      break;
  }
  site.unsupported("REDUCE may only call numpy's array reconstruction, not " + callable.data);
}

void build(Object& target, const Object& state, const OpcodeSite& site) {
  if (target.built || (target.type != Object::Type::array && target.type != Object::Type::dtype))
    site.unsupported("BUILD may only finish a numpy array or dtype, not a " + type_name(target));
  if (state.type != Object::Type::tuple) site.malformed("BUILD state must be a tuple");
  if (target.type == Object::Type::dtype) {  // (3, '|', None, None, None, -1, -1, 0)
    target.built = true;
    return;
  }
  // ndarray state: ([version,] shape, dtype, is_fortran, data)
  std::vector<ObjectPtr> s = state.items;
  if (s.size() == 5) s.erase(s.begin());
  if (s.size() != 4) site.malformed("numpy array state must have 4 or 5 items");
  std::uint64_t n = length_1d(arg(s, 0, Object::Type::tuple, "a shape tuple", site), site);
  const Object& dt = arg(s, 1, Object::Type::dtype, "a numpy dtype", site);
  const std::string& data = byte_payload(*s[3], site);
  if (data.size() != n) site.malformed("numpy array data does not match its shape");
  target.dtype = dt.dtype;
  target.data = data;
  target.built = true;
}

}  // namespace flatface::pickle
