#include "formats/pickle.hpp"

#include <cstdio>
#include <cstring>
#include <limits>
#include <unordered_map>

#include "flatface/options.hpp"
#include "formats/pickle_opcodes.hpp"

namespace flatface::pickle {

Object::~Object() {
  std::vector<ObjectPtr> pending = std::move(items);
  while (!pending.empty()) {
    ObjectPtr p = std::move(pending.back());
    pending.pop_back();
    if (p && p.use_count() == 1) {
      for (auto& child : p->items) pending.push_back(std::move(child));
      p->items.clear();
    }
  }
}

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

ObjectPtr make(Object::Type type) {
  return std::make_shared<Object>(type);
}

bool is_list_or_holds_one(const Object& o) {
  return o.type == Object::Type::list || o.contains_list;
}

// numpy type strings for the two element types we accept.
std::string dtype_from_typestr(std::string s) {
  if (!s.empty() && (s[0] == '|' || s[0] == '<' || s[0] == '>' || s[0] == '=')) s.erase(0, 1);
  if (s == "u1" || s == "uint8" || s == "B") return "uint8";
  if (s == "b1" || s == "bool" || s == "?") return "bool";
  return "";
}

class Reader {
 public:
  Reader(const std::uint8_t* bytes, std::size_t size, const std::string& source)
      : p_(bytes), n_(size), source_(source) {}

  LoadResult run() {
    while (true) {
      if (pos_ >= n_) {
        throw RuntimeError(source_ + ": truncated pickle: the data ends at byte offset " +
                           std::to_string(n_) + " before the STOP opcode");
      }
      op_pos_ = pos_;
      op_ = p_[pos_++];
      facts_ = find_opcode(op_);
      if (step()) break;
    }
    LoadResult r;
    r.value = result_;
    r.protocol = protocol_;
    return r;
  }

 private:
  std::string where() const {
    char code[8];
    std::snprintf(code, sizeof code, "0x%02x", op_);
    return std::string("opcode ") + code + " ('" + opcode_name(op_) + "') at byte offset " +
           std::to_string(op_pos_);
  }
  [[noreturn]] void unsupported(const std::string& detail = "") const {
    throw RuntimeError(source_ + ": unsupported pickle " + where() +
                       (detail.empty() ? "" : ": " + detail));
  }
  [[noreturn]] void malformed(const std::string& detail) const {
    throw RuntimeError(source_ + ": malformed pickle at " + where() + ": " + detail);
  }
  [[noreturn]] void truncated(std::uint64_t need) const {
    throw RuntimeError(source_ + ": truncated pickle: " + where() + " needs " +
                       std::to_string(need) + " bytes from byte offset " + std::to_string(pos_) +
                       ", but the data ends at byte offset " + std::to_string(n_));
  }

  const std::uint8_t* take(std::uint64_t count) {
    if (count > n_ - pos_) truncated(count);
    const std::uint8_t* at = p_ + pos_;
    pos_ += static_cast<std::size_t>(count);
    return at;
  }
  std::uint64_t le(int width) {
    const std::uint8_t* b = take(static_cast<std::uint64_t>(width));
    std::uint64_t v = 0;
    for (int i = width - 1; i >= 0; --i) v = (v << 8) | b[i];
    return v;
  }
  std::string bytes(std::uint64_t count) {
    const std::uint8_t* b = take(count);
    return std::string(reinterpret_cast<const char*>(b), static_cast<std::size_t>(count));
  }
  std::string line() {
    const void* nl = std::memchr(p_ + pos_, '\n', n_ - pos_);
    if (!nl) truncated(n_ - pos_ + 1);
    std::size_t len = static_cast<const std::uint8_t*>(nl) - (p_ + pos_);
    std::string s = bytes(len);
    ++pos_;
    return s;
  }
  std::uint64_t decimal_line() {
    std::string s = line();
    if (s.empty() || s.size() > 18) malformed("expected a decimal memo key, got '" + s + "'");
    std::uint64_t v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') malformed("expected a decimal memo key, got '" + s + "'");
      v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return v;
  }

  void push(ObjectPtr o) { stack_.push_back(std::move(o)); }
  ObjectPtr pop() {
    if (stack_.size() <= floor()) malformed("the stack is empty");
    ObjectPtr o = std::move(stack_.back());
    stack_.pop_back();
    return o;
  }
  ObjectPtr& top() {
    if (stack_.size() <= floor()) malformed("the stack is empty");
    return stack_.back();
  }
  std::size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<ObjectPtr> pop_mark() {
    if (marks_.empty()) malformed("no MARK before it");
    std::size_t m = marks_.back();
    marks_.pop_back();
    std::vector<ObjectPtr> items(std::make_move_iterator(stack_.begin() + m),
                                 std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return items;
  }

  ObjectPtr tuple(std::vector<ObjectPtr> items) {
    auto t = make(Object::Type::tuple);
    for (const auto& i : items) t->contains_list = t->contains_list || is_list_or_holds_one(*i);
    t->items = std::move(items);
    return t;
  }
  ObjectPtr integer(std::int64_t v, Object::Type type = Object::Type::integer) {
    auto o = make(type);
    o->integer = v;
    return o;
  }
  ObjectPtr blob(std::string data, Object::Type type, bool python2_str = false) {
    auto o = make(type);
    o->data = std::move(data);
    o->python2_str = python2_str;
    return o;
  }
  // Lists may hold anything but lists: that keeps every object graph acyclic.
  void append(Object& list, ObjectPtr item) {
    if (list.type != Object::Type::list)
      malformed("appending to a " + type_name(list) + ", expected a list");
    if (is_list_or_holds_one(*item)) unsupported("a list inside a list is not supported");
    list.items.push_back(std::move(item));
  }
  void memo_put(std::uint64_t key) { memo_[key] = top(); }
  void memo_get(std::uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) malformed("memo key " + std::to_string(key) + " was never stored");
    push(it->second);
  }

  static std::string type_name(const Object& o) {
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

  void global(const std::string& module, const std::string& name) {
    std::string q = module + "." + name;
    if (!allowed_global(q, nullptr)) {
      unsupported("global '" + q +
                  "' is not allowed (only numpy's uint8/bool array reconstruction is read)");
    }
    push(blob(q, Object::Type::global));
  }

  // UTF-8 text whose code points are all below 256, as latin-1 bytes.
  std::string latin1(const std::string& utf8) {
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
        malformed("text for _codecs.encode(..., 'latin1') has a character above U+00FF");
      }
    }
    return out;
  }

  const Object& arg(const std::vector<ObjectPtr>& args, std::size_t i, Object::Type type,
                    const char* what) {
    if (i >= args.size() || args[i]->type != type)
      unsupported(std::string("unexpected arguments for numpy reconstruction: expected ") + what +
                  " as argument " + std::to_string(i + 1));
    return *args[i];
  }
  std::uint64_t length_1d(const Object& shape) {
    if (shape.items.size() != 1 || shape.items[0]->type != Object::Type::integer ||
        shape.items[0]->integer < 0)
      unsupported("only one-dimensional numpy arrays are supported");
    return static_cast<std::uint64_t>(shape.items[0]->integer);
  }
  const std::string& byte_payload(const Object& o) {
    if (o.type != Object::Type::bytes)
      unsupported("numpy array data must be bytes, got " + type_name(o));
    return o.data;
  }

  void reduce() {
    ObjectPtr args_obj = pop();
    ObjectPtr callable = pop();
    Callable role;
    if (callable->type != Object::Type::global || !allowed_global(callable->data, &role))
      unsupported("REDUCE may only call numpy's array reconstruction, not a " +
                  type_name(*callable));
    if (args_obj->type != Object::Type::tuple) malformed("REDUCE arguments must be a tuple");
    const auto& a = args_obj->items;
    switch (role) {
      case Callable::reconstruct: {  // _reconstruct(ndarray, (0,), b'b'); BUILD fills it in
        const Object& cls = arg(a, 0, Object::Type::global, "numpy.ndarray");
        if (cls.data != "numpy.ndarray" || a.size() != 3)
          unsupported("_reconstruct may only build a numpy.ndarray");
        auto o = make(Object::Type::array);
        o->built = false;
        push(o);
        return;
      }
      case Callable::dtype: {  // dtype('u1', False, True)
        if (a.empty() || (a[0]->type != Object::Type::text && a[0]->type != Object::Type::bytes))
          unsupported("numpy.dtype needs a type string");
        std::string d = dtype_from_typestr(a[0]->data);
        if (d.empty())
          unsupported("numpy dtype '" + a[0]->data + "' (only uint8 and bool arrays are read)");
        auto o = make(Object::Type::dtype);
        o->dtype = d;
        o->built = false;
        push(o);
        return;
      }
      case Callable::scalar: {  // scalar(dtype, b'\x01')
        const Object& dt = arg(a, 0, Object::Type::dtype, "a numpy dtype");
        const std::string& data = byte_payload(arg(a, 1, Object::Type::bytes, "bytes"));
        if (data.size() != 1) unsupported("a numpy scalar must be one byte");
        auto v = static_cast<unsigned char>(data[0]);
        if (dt.dtype == "bool")
          push(integer(v != 0 ? 1 : 0, Object::Type::boolean));
        else
          push(integer(v));
        return;
      }
      case Callable::frombuffer: {  // _frombuffer(buffer, dtype, shape, order)
        const std::string& data = byte_payload(arg(a, 0, Object::Type::bytes, "a buffer"));
        const Object& dt = arg(a, 1, Object::Type::dtype, "a numpy dtype");
        std::uint64_t n = length_1d(arg(a, 2, Object::Type::tuple, "a shape tuple"));
        if (data.size() != n) malformed("numpy array data does not match its shape");
        auto o = make(Object::Type::array);
        o->dtype = dt.dtype;
        o->data = data;
        push(o);
        return;
      }
      case Callable::codecs_encode: {  // encode('\xff\xd8...', 'latin1') == b'\xff\xd8...'
        const Object& text = arg(a, 0, Object::Type::text, "text");
        const Object& enc = arg(a, 1, Object::Type::text, "an encoding");
        if (a.size() != 2 || (enc.data != "latin1" && enc.data != "latin-1"))
          unsupported("_codecs.encode is only read with the 'latin1' encoding");
        push(blob(latin1(text.data), Object::Type::bytes));
        return;
      }
      case Callable::bytes:  // only the empty call: bytes() == b''
        if (!a.empty()) unsupported("bytes(...) is only read without arguments");
        push(blob("", Object::Type::bytes));
        return;
      case Callable::ndarray:
        break;
    }
    unsupported("REDUCE may only call numpy's array reconstruction, not " + callable->data);
  }

  void build() {
    ObjectPtr state = pop();
    Object& target = *top();
    if (target.built || (target.type != Object::Type::array && target.type != Object::Type::dtype))
      unsupported("BUILD may only finish a numpy array or dtype, not a " + type_name(target));
    if (state->type != Object::Type::tuple) malformed("BUILD state must be a tuple");
    if (target.type == Object::Type::dtype) {  // (3, '|', None, None, None, -1, -1, 0)
      target.built = true;
      return;
    }
    // ndarray state: ([version,] shape, dtype, is_fortran, data)
    std::vector<ObjectPtr> s = state->items;
    if (s.size() == 5) s.erase(s.begin());
    if (s.size() != 4) malformed("numpy array state must have 4 or 5 items");
    std::uint64_t n = length_1d(arg(s, 0, Object::Type::tuple, "a shape tuple"));
    const Object& dt = arg(s, 1, Object::Type::dtype, "a numpy dtype");
    const std::string& data = byte_payload(*s[3]);
    if (data.size() != n) malformed("numpy array data does not match its shape");
    target.dtype = dt.dtype;
    target.data = data;
    target.built = true;
  }

  // The opcode's argument, read as the opcode table describes it: a fixed-width little-endian
  // integer, or the bytes after a little-endian length.
  std::uint64_t fixed_argument() { return le(facts_->size); }
  std::string counted_argument() { return bytes(le(facts_->size)); }

  // Executes the opcode op_; true at STOP.
  bool step() {
    switch (op_) {
      case code_of("PROTO"):
        protocol_ = static_cast<int>(fixed_argument());
        if (protocol_ > 5) unsupported("pickle protocol " + std::to_string(protocol_));
        return false;
      case code_of("FRAME"): {  // frames are transparent to a reader that holds all the bytes
        std::uint64_t len = fixed_argument();
        if (len > n_ - pos_) truncated(len);
        return false;
      }
      case code_of("STOP"):
        result_ = pop();
        return true;
      case code_of("MARK"):
        marks_.push_back(stack_.size());
        return false;
      case code_of("EMPTY_LIST"):
        push(make(Object::Type::list));
        return false;
      case code_of("LIST"): {
        auto items = pop_mark();
        auto l = make(Object::Type::list);
        for (auto& i : items) append(*l, std::move(i));
        push(l);
        return false;
      }
      case code_of("APPEND"): {
        ObjectPtr item = pop();
        append(*top(), std::move(item));
        return false;
      }
      case code_of("APPENDS"): {
        auto items = pop_mark();
        Object& l = *top();
        for (auto& i : items) append(l, std::move(i));
        return false;
      }
      case code_of("EMPTY_TUPLE"):
        push(tuple({}));
        return false;
      case code_of("TUPLE"):
        push(tuple(pop_mark()));
        return false;
      case code_of("TUPLE1"):
      case code_of("TUPLE2"):
      case code_of("TUPLE3"): {
        const auto k = static_cast<std::size_t>(facts_->pops);
        if (stack_.size() < floor() + k) malformed("needs " + std::to_string(k) + " stack items");
        std::vector<ObjectPtr> items(std::make_move_iterator(stack_.end() - k),
                                     std::make_move_iterator(stack_.end()));
        stack_.resize(stack_.size() - k);
        push(tuple(std::move(items)));
        return false;
      }
      case code_of("NONE"):
        push(make(Object::Type::none));
        return false;
      case code_of("NEWTRUE"):
      case code_of("NEWFALSE"):
        push(integer(op_ == code_of("NEWTRUE") ? 1 : 0, Object::Type::boolean));
        return false;
      case code_of("BININT1"):
      case code_of("BININT2"):
        push(integer(static_cast<std::int64_t>(fixed_argument())));
        return false;
      case code_of("BININT"):  // signed 32-bit
        push(integer(static_cast<std::int32_t>(static_cast<std::uint32_t>(fixed_argument()))));
        return false;
      case code_of("LONG1"): {  // little-endian two's complement of a given byte length
        std::uint64_t len = le(facts_->size);
        if (len > 8) unsupported("integers wider than 64 bits are not supported");
        if (len == 0) {
          push(integer(0));
          return false;
        }
        std::uint64_t v = le(static_cast<int>(len));
        if (len < 8 && (v >> (8 * len - 1)) & 1) v |= ~std::uint64_t{0} << (8 * len);
        push(integer(static_cast<std::int64_t>(v)));
        return false;
      }
      case code_of("SHORT_BINSTRING"):  // Python 2 str
        push(blob(counted_argument(), Object::Type::bytes, true));
        return false;
      case code_of("BINSTRING"): {  // Python 2 str, a signed 32-bit length
        auto len = static_cast<std::int32_t>(static_cast<std::uint32_t>(le(facts_->size)));
        if (len < 0) malformed("negative string length " + std::to_string(len));
        push(blob(bytes(static_cast<std::uint64_t>(len)), Object::Type::bytes, true));
        return false;
      }
      case code_of("SHORT_BINBYTES"):
      case code_of("BINBYTES"):
      case code_of("BINBYTES8"):
      case code_of("BYTEARRAY8"):
        push(blob(counted_argument(), Object::Type::bytes));
        return false;
      case code_of("SHORT_BINUNICODE"):
      case code_of("BINUNICODE"):
      case code_of("BINUNICODE8"):
        push(blob(counted_argument(), Object::Type::text));
        return false;
      case code_of("PUT"):
        memo_put(decimal_line());
        return false;
      case code_of("BINPUT"):
      case code_of("LONG_BINPUT"):
        memo_put(fixed_argument());
        return false;
      case code_of("MEMOIZE"):
        memo_put(memo_.size());
        return false;
      case code_of("GET"):
        memo_get(decimal_line());
        return false;
      case code_of("BINGET"):
      case code_of("LONG_BINGET"):
        memo_get(fixed_argument());
        return false;
      case code_of("GLOBAL"): {
        std::string module = line();
        std::string name = line();
        global(module, name);
        return false;
      }
      case code_of("STACK_GLOBAL"): {
        ObjectPtr name = pop();
        ObjectPtr module = pop();
        if (module->type != Object::Type::text || name->type != Object::Type::text)
          malformed("STACK_GLOBAL needs two str on the stack");
        global(module->data, name->data);
        return false;
      }
      case code_of("REDUCE"):
        reduce();
        return false;
      case code_of("BUILD"):
        build();
        return false;
      default:
        unsupported();
    }
  }

  const std::uint8_t* p_;
  std::size_t n_;
  std::string source_;
  std::size_t pos_ = 0;
  std::size_t op_pos_ = 0;
  std::uint8_t op_ = 0;
  const Opcode* facts_ = nullptr;  // op_'s row of the opcode table; nullptr for no opcode
  int protocol_ = 0;
  std::vector<ObjectPtr> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint64_t, ObjectPtr> memo_;
  ObjectPtr result_;
};

void put_le32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

}  // namespace

LoadResult load(const std::uint8_t* bytes, std::size_t size, const std::string& source) {
  return Reader(bytes, size, source).run();
}

std::vector<std::uint8_t> dump_bytes_and_bools(const std::vector<std::vector<std::uint8_t>>& images,
                                               const std::vector<bool>& flags) {
  constexpr std::size_t kBatch = 1000;  // items per APPENDS, as Python writes them
  std::vector<std::uint8_t> out{code_of("PROTO"), 2, code_of("EMPTY_LIST")};
  for (std::size_t i = 0; i < images.size(); ++i) {
    if (i % kBatch == 0) out.push_back(code_of("MARK"));
    const auto& img = images[i];
    if (img.size() < 256) {
      out.push_back(code_of("SHORT_BINSTRING"));
      out.push_back(static_cast<std::uint8_t>(img.size()));
    } else {
      if (img.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        throw RuntimeError("pickle: image " + std::to_string(i) + " is larger than 2 GiB");
      out.push_back(code_of("BINSTRING"));
      put_le32(out, static_cast<std::uint32_t>(img.size()));
    }
    out.insert(out.end(), img.begin(), img.end());
    if (i % kBatch == kBatch - 1 || i + 1 == images.size()) out.push_back(code_of("APPENDS"));
  }
  out.push_back(code_of("EMPTY_LIST"));
  for (std::size_t i = 0; i < flags.size(); ++i) {
    if (i % kBatch == 0) out.push_back(code_of("MARK"));
    out.push_back(flags[i] ? code_of("NEWTRUE") : code_of("NEWFALSE"));
    if (i % kBatch == kBatch - 1 || i + 1 == flags.size()) out.push_back(code_of("APPENDS"));
  }
  out.push_back(code_of("TUPLE2"));
  out.push_back(code_of("STOP"));
  return out;
}

}  // namespace flatface::pickle
