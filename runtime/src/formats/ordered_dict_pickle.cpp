#include "formats/ordered_dict_pickle.hpp"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
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
  std::vector<std::size_t> starts;  // where each item on the stack begins in `out`
  struct Mark {
    std::size_t depth, at;
  };
  std::vector<Mark> marks;
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
      const std::size_t base = marks.empty() ? 0 : marks.back().depth;
      if (starts.size() < base + taken + 1) return std::nullopt;
      out.insert(starts[starts.size() - taken], 1, static_cast<char>(kMark));
      out += static_cast<char>(code == kSetitem ? kSetitems : kAppends);
      starts.resize(starts.size() - taken);
      changed = true;
      p = *end;
      continue;
    }
    out.append(pickle, p, *end - p);
    p = *end;
    if (code == kStop) return changed ? std::optional<std::string>(out) : std::nullopt;
    if (op.mark) {
      marks.push_back({starts.size(), at});
      continue;
    }
    std::size_t begin = at;
    if (op.to_mark) {
      if (marks.empty()) return std::nullopt;
      starts.resize(marks.back().depth);
      begin = marks.back().at;
      marks.pop_back();
    }
    const auto pops = static_cast<std::size_t>(op.pops);
    if (pops > 0) {
      if (starts.size() < pops + (marks.empty() ? 0 : marks.back().depth)) return std::nullopt;
      begin = starts[starts.size() - pops];
      starts.resize(starts.size() - pops);
    }
    for (int i = 0; i < op.pushes; ++i) starts.push_back(begin);
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
  // Each stack item: where its opcodes begin in `out`, and whether it stands for a foreign class
  // (an empty dict that will become its instance) or is such an instance.
  enum class Kind { value, foreign_class, foreign_object };
  struct Item {
    std::size_t begin;
    Kind kind;
  };
  struct Mark {
    std::size_t depth, at;
  };
  std::string out;
  out.reserve(pickle.size() + 256);
  std::vector<Item> stack;
  std::vector<Mark> marks;
  std::vector<std::uint32_t> class_memo;  // memo ids that hold a foreign class
  bool changed = false;
  auto is_class_memo = [&](std::uint32_t id) {
    return std::find(class_memo.begin(), class_memo.end(), id) != class_memo.end();
  };
  // The dict below the top item takes the top item as its entry `key`.
  auto store_top_under = [&](const char* key) {
    out.insert(stack.back().begin, static_cast<char>(kMark) + binunicode(key));
    out += static_cast<char>(kSetitems);
    stack.pop_back();
  };
  for (std::size_t p = 0; p < pickle.size();) {
    const auto code = static_cast<unsigned char>(pickle[p]);
    const auto end = opcode_end(pickle, p);
    if (!end) return std::nullopt;
    const Opcode& op = *describe(code);
    const std::size_t at = out.size();
    const std::size_t base = marks.empty() ? 0 : marks.back().depth;
    const auto top = [&](std::size_t i) -> Item& { return stack[stack.size() - 1 - i]; };
    if (code == kGlobal && foreign_class(pickle.substr(p + 1, *end - p - 1))) {
      out += static_cast<char>(kEmptyDict);  // every instance gets a fresh dict
      stack.push_back({at, Kind::foreign_class});
      changed = true;
      p = *end;
      continue;
    }
    if ((code == kBinget || code == kLongBinget) && is_class_memo(memo_id(pickle, p))) {
      out += static_cast<char>(kEmptyDict);
      stack.push_back({at, Kind::foreign_class});
      p = *end;
      continue;
    }
    if ((code == kBinput || code == kLongBinput) && stack.size() > base &&
        top(0).kind == Kind::foreign_class && top(0).begin + 1 == at) {
      class_memo.push_back(memo_id(pickle, p));  // the class itself, fetched again later
      p = *end;
      continue;
    }
    if ((code == kReduce || code == kNewobj) && stack.size() >= base + 2 &&
        top(1).kind == Kind::foreign_class) {
      // cls(*args): the dict standing for cls becomes the instance; empty arguments go.
      if (top(0).begin + 1 == at && static_cast<unsigned char>(out[top(0).begin]) == kEmptyTuple) {
        out.pop_back();
        stack.pop_back();
      } else {
        store_top_under(kPickledArgs);
      }
      stack.back().kind = Kind::foreign_object;
      p = *end;
      continue;
    }
    if (code == kBuild && stack.size() >= base + 2 && top(1).kind == Kind::foreign_object) {
      store_top_under(kPickledState);  // obj.__setstate__(state) kept as an entry
      p = *end;
      continue;
    }
    out.append(pickle, p, *end - p);
    p = *end;
    if (code == kStop) return changed ? std::optional<std::string>(out) : std::nullopt;
    if (op.mark) {
      marks.push_back({stack.size(), at});
      continue;
    }
    std::size_t begin = at;
    if (op.to_mark) {
      if (marks.empty() || stack.size() < marks.back().depth) return std::nullopt;
      stack.resize(marks.back().depth);
      begin = marks.back().at;
      marks.pop_back();
    }
    const auto pops = static_cast<std::size_t>(op.pops);
    const std::size_t floor = marks.empty() ? 0 : marks.back().depth;
    if (pops > 0) {
      if (stack.size() < pops + floor) return std::nullopt;
      begin = top(pops - 1).begin;
      stack.resize(stack.size() - pops);
    }
    for (int i = 0; i < op.pushes; ++i) stack.push_back({begin, Kind::value});
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
