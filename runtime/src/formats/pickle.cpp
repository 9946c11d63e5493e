// The opcode machine of the safe pickle reader (pickle.hpp): a stack, MARKs and a memo, run one
// opcode at a time from the opcode table (pickle_opcodes.hpp). What GLOBAL may name and what
// REDUCE and BUILD make of it is pickle_calls.cpp; the writer is pickle_writer.cpp.
//
// Reader::step() is longer than our functions should be, and on purpose: it is the bytecode
// dispatch, one case per opcode the reader runs, each a few lines. A switch over an instruction
// set reads best as one table (CPython's _pickle.c load loop is one too); spread over handlers,
// a reader could no longer see at a glance which opcodes run and which are refused.
#include "formats/pickle.hpp"

#include <cstring>
#include <unordered_map>

#include "flatface/options.hpp"
#include "formats/pickle_calls.hpp"
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

bool is_list_or_holds_one(const Object& o) {
  return o.type == Object::Type::list || o.contains_list;
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
  OpcodeSite site() const { return {source_, op_, op_pos_}; }
  [[noreturn]] void unsupported(const std::string& detail = "") const {
    site().unsupported(detail);
  }
  [[noreturn]] void malformed(const std::string& detail) const { site().malformed(detail); }
  [[noreturn]] void truncated(std::uint64_t need) const {
    throw RuntimeError(source_ + ": truncated pickle: " + site().where() + " needs " +
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
    auto t = make_object(Object::Type::tuple);
    for (const auto& i : items) t->contains_list = t->contains_list || is_list_or_holds_one(*i);
    t->items = std::move(items);
    return t;
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

  void global(const std::string& module, const std::string& name) {
    std::string q = module + "." + name;
    if (!is_allowed_global(q)) {
      unsupported("global '" + q +
                  "' is not allowed (only numpy's uint8/bool array reconstruction is read)");
    }
    push(make_blob(q, Object::Type::global));
  }

  void reduce() {
    ObjectPtr args = pop();
    ObjectPtr callable = pop();
    push(call(*callable, *args, site()));
  }
  void build_top() {
    ObjectPtr state = pop();
    build(*top(), *state, site());
  }

  // The opcode's argument, read as the opcode table describes it: a fixed-width little-endian
  // integer, or the bytes after a little-endian length.
  std::uint64_t fixed_argument() { return le(facts_->size); }
  std::string counted_argument() { return bytes(le(facts_->size)); }

  // Executes the opcode op_; true at STOP. One case per opcode, in the order of the opcode table:
  // an interpreter's dispatch reads best whole (≈140 lines, each case a line or two), so it is not
  // split under the 80-line rule.
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
        push(make_object(Object::Type::list));
        return false;
      case code_of("LIST"): {
        auto items = pop_mark();
        auto l = make_object(Object::Type::list);
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
        push(make_object(Object::Type::none));
        return false;
      case code_of("NEWTRUE"):
      case code_of("NEWFALSE"):
        push(make_integer(op_ == code_of("NEWTRUE") ? 1 : 0, Object::Type::boolean));
        return false;
      case code_of("BININT1"):
      case code_of("BININT2"):
        push(make_integer(static_cast<std::int64_t>(fixed_argument())));
        return false;
      case code_of("BININT"):  // signed 32-bit
        push(make_integer(static_cast<std::int32_t>(static_cast<std::uint32_t>(fixed_argument()))));
        return false;
      case code_of("LONG1"): {  // little-endian two's complement of a given byte length
        std::uint64_t len = le(facts_->size);
        if (len > 8) unsupported("integers wider than 64 bits are not supported");
        if (len == 0) {
          push(make_integer(0));
          return false;
        }
        std::uint64_t v = le(static_cast<int>(len));
        if (len < 8 && (v >> (8 * len - 1)) & 1) v |= ~std::uint64_t{0} << (8 * len);
        push(make_integer(static_cast<std::int64_t>(v)));
        return false;
      }
      case code_of("SHORT_BINSTRING"):  // Python 2 str
        push(make_blob(counted_argument(), Object::Type::bytes, true));
        return false;
      case code_of("BINSTRING"): {  // Python 2 str, a signed 32-bit length
        auto len = static_cast<std::int32_t>(static_cast<std::uint32_t>(le(facts_->size)));
        if (len < 0) malformed("negative string length " + std::to_string(len));
        push(make_blob(bytes(static_cast<std::uint64_t>(len)), Object::Type::bytes, true));
        return false;
      }
      case code_of("SHORT_BINBYTES"):
      case code_of("BINBYTES"):
      case code_of("BINBYTES8"):
      case code_of("BYTEARRAY8"):
        push(make_blob(counted_argument(), Object::Type::bytes));
        return false;
      case code_of("SHORT_BINUNICODE"):
      case code_of("BINUNICODE"):
      case code_of("BINUNICODE8"):
        push(make_blob(counted_argument(), Object::Type::text));
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
        build_top();
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

}  // namespace

LoadResult load(const std::uint8_t* bytes, std::size_t size, const std::string& source) {
  return Reader(bytes, size, source).run();
}

}  // namespace flatface::pickle
