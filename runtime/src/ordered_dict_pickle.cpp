#include "ordered_dict_pickle.hpp"

#include <cstdint>
#include <cstring>
#include <vector>

namespace flatface {

namespace {

// How an opcode changes the stack: `pops` items (or everything above the last mark when
// `to_mark`), then `pushes`; `arg` bytes follow it, or a length prefix of `len_bytes`.
struct Op {
  int pops = 0;
  int pushes = 0;
  bool to_mark = false;
  bool mark = false;
  int arg = 0;
  int len_bytes = 0;
  bool lines = false;  // GLOBAL: two newline-terminated strings
};

bool describe(unsigned char code, Op& op) {
  switch (code) {
    case '(': op.mark = true; return true;                               // MARK
    case ')': case '}': case ']': case 'N':                               // EMPTY_*, NONE
    case 0x88: case 0x89: op.pushes = 1; return true;                     // NEWTRUE/NEWFALSE
    case 'c': op.pushes = 1; op.lines = true; return true;                // GLOBAL
    case 'J': op.pushes = 1; op.arg = 4; return true;                     // BININT
    case 'K': op.pushes = 1; op.arg = 1; return true;                     // BININT1
    case 'M': op.pushes = 1; op.arg = 2; return true;                     // BININT2
    case 'G': op.pushes = 1; op.arg = 8; return true;                     // BINFLOAT
    case 'h': op.pushes = 1; op.arg = 1; return true;                     // BINGET
    case 'j': op.pushes = 1; op.arg = 4; return true;                     // LONG_BINGET
    case 'q': op.arg = 1; return true;                                    // BINPUT
    case 'r': op.arg = 4; return true;                                    // LONG_BINPUT
    case 'X': case 'T': case 'B': op.pushes = 1; op.len_bytes = 4; return true;  // strings
    case 'U': case 'C': case 0x8a: op.pushes = 1; op.len_bytes = 1; return true; // short, LONG1
    case 'Q': op.pops = 1; op.pushes = 1; return true;                    // BINPERSID
    case 0x85: op.pops = 1; op.pushes = 1; return true;                   // TUPLE1
    case 0x86: op.pops = 2; op.pushes = 1; return true;                   // TUPLE2
    case 0x87: op.pops = 3; op.pushes = 1; return true;                   // TUPLE3
    case 't': op.to_mark = true; op.pushes = 1; return true;              // TUPLE
    case 'l': op.to_mark = true; op.pushes = 1; return true;              // LIST
    case 'd': op.to_mark = true; op.pushes = 1; return true;              // DICT
    case 'R': case 0x81: case 'b': case 'a': op.pops = 2; op.pushes = 1; return true;  // REDUCE...
    case 's': op.pops = 3; op.pushes = 1; return true;                    // SETITEM
    case 'u': case 'e': op.to_mark = true; return true;                   // SETITEMS, APPENDS
    case '2': op.pushes = 1; return true;                                 // DUP
    default: return false;
  }
}

// The memo id stored by a BINPUT / LONG_BINPUT / BINGET / LONG_BINGET at `p`.
std::uint32_t memo_id(const std::string& pickle, std::size_t p) {
  std::uint32_t id = 0;
  const bool long_form = pickle[p] == 'r' || pickle[p] == 'j';
  std::memcpy(&id, pickle.data() + p + 1, long_form ? 4 : 1);  // little endian, as pickle is
  return id;
}

}  // namespace

std::optional<std::string> ordered_dict_as_dict(const std::string& pickle) {
  static const char kHeader[] = "\x80\x02" "ccollections\nOrderedDict\n";
  const std::size_t header = sizeof(kHeader) - 1;
  if (pickle.compare(0, header, kHeader, header) != 0) return std::nullopt;
  std::size_t p = header;
  // The class must be memoised: later `OrderedDict()` calls (each tensor's empty backward hooks)
  // fetch it from there. libtorch's unpickler lacks POP, so instead of taking the class off the
  // stack, the plain dict takes its memo slot and every `OrderedDict()` becomes None, which is
  // what libtorch's own unpickler turns it into.
  const std::size_t put = pickle[p] == 'q' ? 2 : pickle[p] == 'r' ? 5 : 0;
  if (put == 0 || p + put + 2 > pickle.size()) return std::nullopt;
  const std::uint32_t class_id = memo_id(pickle, p);
  std::string out = "\x80\x02}" + pickle.substr(p, put);
  p += put;
  if (pickle.compare(p, 2, ")R") != 0) return std::nullopt;
  p += 2;

  // Scan the SETITEMS batches; the first opcode with only the dict on the stack that is neither
  // a memo store nor another batch begins the attribute state, which is dropped with its BUILD.
  std::int64_t depth = 1;
  std::vector<std::int64_t> marks;
  while (p < pickle.size()) {
    const auto code = static_cast<unsigned char>(pickle[p]);
    if (depth == 1 && marks.empty() && code != '(' && code != 'q' && code != 'r') {
      return out + ".";  // STOP here: either the real end or the start of the dropped state
    }
    Op op;
    if (!describe(code, op)) return std::nullopt;
    const std::size_t begin = p++;
    if (op.lines) {
      for (int i = 0; i < 2; ++i) {
        const auto nl = pickle.find('\n', p);
        if (nl == std::string::npos) return std::nullopt;
        p = nl + 1;
      }
    }
    std::size_t skip = static_cast<std::size_t>(op.arg);
    if (op.len_bytes > 0) {
      if (p + static_cast<std::size_t>(op.len_bytes) > pickle.size()) return std::nullopt;
      std::uint32_t len = 0;
      std::memcpy(&len, pickle.data() + p, static_cast<std::size_t>(op.len_bytes));
      skip = static_cast<std::size_t>(op.len_bytes) + len;
    }
    p += skip;
    if (p > pickle.size()) return std::nullopt;
    if ((code == 'h' || code == 'j') && memo_id(pickle, begin) == class_id) {
      if (pickle.compare(p, 2, ")R") != 0) return std::nullopt;  // the class used otherwise
      out += 'N';
      p += 2;
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

}  // namespace flatface
