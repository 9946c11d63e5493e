#include "formats/ordered_dict_pickle.hpp"

#include <cstdint>
#include <initializer_list>
#include <map>
#include <vector>

#include "formats/pickle_opcodes.hpp"

namespace flatface {

namespace {

using pickle::Argument;
using pickle::code_of;
using pickle::Opcode;

// The opcode table's row for `code` when the scanner steps over that opcode, else nullptr.
const Opcode* describe(unsigned char code) {
  const Opcode* op = pickle::find_opcode(code);
  return op != nullptr && op->torch_save ? op : nullptr;
}

// The little-endian unsigned integer of `width` bytes at `p`.
std::uint64_t little_endian(const std::string& pickle, std::size_t p, int width) {
  std::uint64_t v = 0;
  for (int i = width - 1; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(pickle[p + static_cast<std::size_t>(i)]);
  return v;
}

// Where the opcode at `p` ends (after its argument), or nullopt when the scanner does not step
// over it or its argument runs past the end of `pickle`.
std::optional<std::size_t> opcode_end(const std::string& pickle, std::size_t p) {
  const Opcode* op = describe(static_cast<unsigned char>(pickle[p++]));
  if (op == nullptr) return std::nullopt;
  const auto size = static_cast<std::size_t>(op->size);
  switch (op->argument) {
    case Argument::none:
      return p;
    case Argument::lines:
      for (std::size_t i = 0; i < size; ++i) {
        const auto nl = pickle.find('\n', p);
        if (nl == std::string::npos) return std::nullopt;
        p = nl + 1;
      }
      return p;
    case Argument::fixed:
      if (size > pickle.size() - p) return std::nullopt;
      return p + size;
    case Argument::counted: {
      if (size > pickle.size() - p) return std::nullopt;
      const std::uint64_t len = little_endian(pickle, p, op->size);
      p += size;
      if (len > pickle.size() - p) return std::nullopt;
      return p + static_cast<std::size_t>(len);
    }
  }
  return std::nullopt;
}

// The memo id stored by a BINPUT / LONG_BINPUT / BINGET / LONG_BINGET at `p`.
std::uint32_t memo_id(const std::string& pickle, std::size_t p) {
  const int width = pickle::find_opcode(static_cast<unsigned char>(pickle[p]))->size;
  return static_cast<std::uint32_t>(little_endian(pickle, p + 1, width));
}

// The opcodes the rewrites below look for or write.
constexpr unsigned char kMark = code_of("MARK"), kStop = code_of("STOP"), kNone = code_of("NONE");
constexpr unsigned char kBinput = code_of("BINPUT"), kLongBinput = code_of("LONG_BINPUT");
constexpr unsigned char kBinget = code_of("BINGET"), kLongBinget = code_of("LONG_BINGET");
constexpr unsigned char kSetitem = code_of("SETITEM"), kSetitems = code_of("SETITEMS");
constexpr unsigned char kAppend = code_of("APPEND"), kAppends = code_of("APPENDS");

std::string bytes(std::initializer_list<unsigned char> codes) {
  return std::string(codes.begin(), codes.end());
}

// The stack of a pickle being rewritten, as far as the rewrites need it: where each item's
// opcodes begin in the output (so that an opcode can go in front of an item), a tag per item,
// and the open MARKs.
class StackShape {
 public:
  struct Item {
    std::size_t begin;
    int tag = 0;
  };

  // Items above the innermost open MARK.
  std::size_t above_mark() const {
    return items_.size() - (marks_.empty() ? 0 : marks_.back().depth);
  }
  Item& top(std::size_t i = 0) { return items_[items_.size() - 1 - i]; }
  void push(Item item) { items_.push_back(item); }
  void pop(std::size_t n) { items_.resize(items_.size() - n); }

  // What `op`, written at `at` in the output, does to the stack; false when it cannot (a
  // malformed pickle): then the rewrite gives up.
  bool apply(const Opcode& op, std::size_t at) {
    if (op.mark) {
      marks_.push_back({items_.size(), at});
      return true;
    }
    std::size_t begin = at;
    if (op.to_mark) {
      if (marks_.empty()) return false;
      items_.resize(marks_.back().depth);
      begin = marks_.back().at;
      marks_.pop_back();
    }
    const auto pops = static_cast<std::size_t>(op.pops);
    if (pops > 0) {
      if (above_mark() < pops) return false;
      begin = top(pops - 1).begin;
      pop(pops);
    }
    for (int i = 0; i < op.pushes; ++i) items_.push_back({begin});
    return true;
  }

 private:
  struct Mark {
    std::size_t depth, at;
  };
  std::vector<Item> items_;
  std::vector<Mark> marks_;
};

}  // namespace

std::optional<std::string> ordered_dict_as_dict(const std::string& pickle) {
  // PROTO 2, GLOBAL collections.OrderedDict; the class is called without arguments (EMPTY_TUPLE,
  // REDUCE).
  static const std::string kHeader =
      bytes({code_of("PROTO"), 2, code_of("GLOBAL")}) + "collections\nOrderedDict\n";
  static const std::string kCall = bytes({code_of("EMPTY_TUPLE"), code_of("REDUCE")});
  if (pickle.compare(0, kHeader.size(), kHeader) != 0) return std::nullopt;
  std::size_t p = kHeader.size();
  // The class must be memoised: later `OrderedDict()` calls (each tensor's empty backward hooks)
  // fetch it from there. libtorch's unpickler lacks POP, so instead of taking the class off the
  // stack, the plain dict takes its memo slot and every `OrderedDict()` becomes None, which is
  // what libtorch's own unpickler turns it into.
  const auto first = static_cast<unsigned char>(pickle[p]);
  const std::size_t put = first == kBinput ? 2 : first == kLongBinput ? 5 : 0;
  if (put == 0 || p + put + kCall.size() > pickle.size()) return std::nullopt;
  const std::uint32_t class_id = memo_id(pickle, p);
  std::string out = bytes({code_of("PROTO"), 2, code_of("EMPTY_DICT")}) + pickle.substr(p, put);
  p += put;
  if (pickle.compare(p, kCall.size(), kCall) != 0) return std::nullopt;
  p += kCall.size();

  // Scan the SETITEMS batches; the first opcode with only the dict on the stack that is neither
  // a memo store nor another batch begins the attribute state, which is dropped with its BUILD.
  std::int64_t depth = 1;
  std::vector<std::int64_t> marks;
  while (p < pickle.size()) {
    const auto code = static_cast<unsigned char>(pickle[p]);
    if (depth == 1 && marks.empty() && code != kMark && code != kBinput && code != kLongBinput) {
      return out + bytes({kStop});  // here: either the real end or the start of the dropped state
    }
    const std::size_t begin = p;
    const auto end = opcode_end(pickle, p);
    if (!end) return std::nullopt;
    const Opcode& op = *describe(code);
    p = *end;
    if ((code == kBinget || code == kLongBinget) && memo_id(pickle, begin) == class_id) {
      if (pickle.compare(p, kCall.size(), kCall) != 0) return std::nullopt;  // used otherwise
      out += static_cast<char>(kNone);
      p += kCall.size();
      depth += 1;
      continue;
    }
    out.append(pickle, begin, p - begin);
    if (op.mark) {
      marks.push_back(depth);
      continue;
    }
    if (op.to_mark) {
      if (marks.empty()) return std::nullopt;
      depth = marks.back();
      marks.pop_back();
    }
    depth -= op.pops;
    if (depth < 0 || (!marks.empty() && depth < marks.back())) return std::nullopt;
    depth += op.pushes;
  }
  return std::nullopt;
}

std::optional<std::string> single_items_as_batches(const std::string& pickle) {
  std::string out;
  out.reserve(pickle.size() + 64);
  bool changed = false;
  StackShape stack;
  for (std::size_t p = 0; p < pickle.size();) {
    const auto code = static_cast<unsigned char>(pickle[p]);
    const auto end = opcode_end(pickle, p);
    if (!end) return std::nullopt;
    const Opcode& op = *describe(code);
    const std::size_t at = out.size();
    if (code == kSetitem || code == kAppend) {
      // The dict or list with its key and value (or item) above it: a MARK goes in before the
      // key, so that the batch opcode takes the same one entry.
      const std::size_t taken = code == kSetitem ? 2 : 1;
      if (stack.above_mark() < taken + 1) return std::nullopt;
      out.insert(stack.top(taken - 1).begin, 1, static_cast<char>(kMark));
      out += static_cast<char>(code == kSetitem ? kSetitems : kAppends);
      stack.pop(taken);
      changed = true;
      p = *end;
      continue;
    }
    out.append(pickle, p, *end - p);
    p = *end;
    if (code == kStop) return changed ? std::optional<std::string>(out) : std::nullopt;
    if (!stack.apply(op, at)) return std::nullopt;
  }
  return std::nullopt;
}

namespace {

// A class outside torch's modules: libtorch's unpickler rebuilds torch's tensors and storages
// only.
bool foreign_class(const std::string& global_argument) {
  const std::string module = global_argument.substr(0, global_argument.find('\n'));
  return module != "torch" && module.rfind("torch.", 0) != 0;
}

// BINUNICODE `text`: a dict key in the rewritten pickle.
std::string binunicode(const std::string& text) {
  std::string out(1, static_cast<char>(code_of("BINUNICODE")));
  for (int i = 0; i < 4; ++i) out += static_cast<char>((text.size() >> (8 * i)) & 0xff);
  return out + text;
}

}  // namespace

std::optional<std::string> objects_as_dicts(const std::string& pickle) {
  constexpr unsigned char kGlobal = code_of("GLOBAL"), kEmptyDict = code_of("EMPTY_DICT");
  constexpr unsigned char kEmptyTuple = code_of("EMPTY_TUPLE"), kBuild = code_of("BUILD");
  constexpr unsigned char kReduce = code_of("REDUCE"), kNewobj = code_of("NEWOBJ");
  // Item tags beside StackShape's 0 (any other value): a foreign class, written as an empty dict
  // that becomes its instance (OrderedDict apart from the others), and such an instance.
  constexpr int kOrderedDictClass = 1, kOtherClass = 2, kForeignObject = 3;
  std::string out;
  out.reserve(pickle.size() + 256);
  StackShape stack;
  std::map<std::uint32_t, int> class_memo;  // memo ids that hold a foreign class -> its tag
  // Whether libtorch needs the rewrite. Its unpickler reads `OrderedDict()` as None, which is
  // all that torch.save's empty per-tensor hooks need (every torch.save file, flatface's own
  // checkpoints too, has them); an OrderedDict that gets items or a state, or any other class,
  // needs the dict.
  bool needed = false;
  auto push_class = [&](std::size_t at, int tag) {
    out += static_cast<char>(kEmptyDict);  // every instance gets a fresh dict
    stack.push({at, tag});
    needed = needed || tag == kOtherClass;
  };
  // The dict below the top item takes the top item as its entry `key`.
  auto store_top_under = [&](const char* key) {
    out.insert(stack.top().begin, static_cast<char>(kMark) + binunicode(key));
    out += static_cast<char>(kSetitems);
    stack.pop(1);
    needed = true;
  };
  auto is_class = [](const StackShape::Item& item) {
    return item.tag == kOrderedDictClass || item.tag == kOtherClass;
  };
  for (std::size_t p = 0; p < pickle.size();) {
    const auto code = static_cast<unsigned char>(pickle[p]);
    const auto end = opcode_end(pickle, p);
    if (!end) return std::nullopt;
    const Opcode& op = *describe(code);
    const std::size_t at = out.size();
    const auto memo = code == kBinget || code == kLongBinget ? class_memo.find(memo_id(pickle, p))
                                                             : class_memo.end();
    if (memo != class_memo.end()) {
      push_class(at, memo->second);
    } else if (code == kGlobal && foreign_class(pickle.substr(p + 1, *end - p - 1))) {
      const bool ordered_dict =
          pickle.compare(p + 1, *end - p - 1, "collections\nOrderedDict\n") == 0;
      push_class(at, ordered_dict ? kOrderedDictClass : kOtherClass);
    } else if ((code == kBinput || code == kLongBinput) && stack.above_mark() > 0 &&
               is_class(stack.top()) && stack.top().begin + 1 == at) {
      class_memo[memo_id(pickle, p)] = stack.top().tag;  // the class itself, fetched again later
    } else if ((code == kReduce || code == kNewobj) && stack.above_mark() >= 2 &&
               is_class(stack.top(1))) {
      // cls(*args): the dict standing for cls becomes the instance; empty arguments go.
      if (stack.top().begin + 1 == at &&
          static_cast<unsigned char>(out[stack.top().begin]) == kEmptyTuple) {
        out.pop_back();
        stack.pop(1);
      } else {
        store_top_under(kPickledArgs);
      }
      stack.top().tag = kForeignObject;
    } else if (code == kBuild && stack.above_mark() >= 2 && stack.top(1).tag == kForeignObject) {
      store_top_under(kPickledState);  // obj.__setstate__(state) kept as an entry
    } else {
      out.append(pickle, p, *end - p);
      if (code == kStop) return needed ? std::optional<std::string>(out) : std::nullopt;
      // SETITEM / APPEND take the instance off the stack and put it back with its new item.
      const std::size_t filled = code == kSetitem ? 2 : 1;
      const bool fills_instance = (code == kSetitem || code == kAppend) &&
                                  stack.above_mark() > filled &&
                                  stack.top(filled).tag == kForeignObject;
      if (!stack.apply(op, at)) return std::nullopt;
      if (fills_instance) stack.top().tag = kForeignObject;
      // An instance with items (SETITEM(S), APPEND(S)): a dict, which None cannot stand for.
      if (fills_instance || (op.to_mark && op.pushes == 0 && stack.above_mark() > 0 &&
                             stack.top().tag == kForeignObject))
        needed = true;
    }
    p = *end;
  }
  return std::nullopt;
}

std::optional<std::size_t> pickle_end(const std::string& data, std::size_t begin) {
  for (std::size_t p = begin; p < data.size();) {
    const bool stop = static_cast<unsigned char>(data[p]) == kStop;
    const auto end = opcode_end(data, p);
    if (!end) return std::nullopt;
    if (stop) return end;
    p = *end;
  }
  return std::nullopt;
}

}  // namespace flatface
