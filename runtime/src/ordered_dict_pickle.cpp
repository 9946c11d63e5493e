#include "ordered_dict_pickle.hpp"

#include <cstdint>
#include <cstring>
#include <vector>

namespace flatface {

namespace {

// How an opcode changes the stack: it pops `pops` items (or everything above the last mark when
// `to_mark`), then pushes `pushes`; `arg` bytes follow it, or a little-endian length prefix of
// `len_bytes` and that many bytes, or (GLOBAL) two newline-terminated strings.
struct Op {
  unsigned char code;
  int pops, pushes;
  bool to_mark, mark;
  int arg, len_bytes;
  bool lines;
};

// The protocol-2 opcodes that torch.save's files use (and a few neighbours): the state dicts of
// both formats and the legacy format's header pickles (magic number, version, sys_info, keys).
// clang-format off
constexpr Op kOps[] = {
  //  code  pops push to_mark mark arg len lines
    {0x80, 0, 0, false, false, 1, 0, false},  // PROTO
    {'.',  1, 0, false, false, 0, 0, false},  // STOP
    {'(',  0, 0, false, true,  0, 0, false},  // MARK
    {')',  0, 1, false, false, 0, 0, false},  // EMPTY_TUPLE
    {'}',  0, 1, false, false, 0, 0, false},  // EMPTY_DICT
    {']',  0, 1, false, false, 0, 0, false},  // EMPTY_LIST
    {'N',  0, 1, false, false, 0, 0, false},  // NONE
    {0x88, 0, 1, false, false, 0, 0, false},  // NEWTRUE
    {0x89, 0, 1, false, false, 0, 0, false},  // NEWFALSE
    {'c',  0, 1, false, false, 0, 0, true},   // GLOBAL
    {'J',  0, 1, false, false, 4, 0, false},  // BININT
    {'K',  0, 1, false, false, 1, 0, false},  // BININT1
    {'M',  0, 1, false, false, 2, 0, false},  // BININT2
    {'G',  0, 1, false, false, 8, 0, false},  // BINFLOAT
    {'h',  0, 1, false, false, 1, 0, false},  // BINGET
    {'j',  0, 1, false, false, 4, 0, false},  // LONG_BINGET
    {'q',  0, 0, false, false, 1, 0, false},  // BINPUT
    {'r',  0, 0, false, false, 4, 0, false},  // LONG_BINPUT
    {'X',  0, 1, false, false, 0, 4, false},  // BINUNICODE
    {'T',  0, 1, false, false, 0, 4, false},  // BINSTRING
    {'B',  0, 1, false, false, 0, 4, false},  // BINBYTES
    {'U',  0, 1, false, false, 0, 1, false},  // SHORT_BINSTRING
    {'C',  0, 1, false, false, 0, 1, false},  // SHORT_BINBYTES
    {0x8a, 0, 1, false, false, 0, 1, false},  // LONG1
    {'Q',  1, 1, false, false, 0, 0, false},  // BINPERSID
    {0x85, 1, 1, false, false, 0, 0, false},  // TUPLE1
    {0x86, 2, 1, false, false, 0, 0, false},  // TUPLE2
    {0x87, 3, 1, false, false, 0, 0, false},  // TUPLE3
    {'t',  0, 1, true,  false, 0, 0, false},  // TUPLE
    {'l',  0, 1, true,  false, 0, 0, false},  // LIST
    {'d',  0, 1, true,  false, 0, 0, false},  // DICT
    {'R',  2, 1, false, false, 0, 0, false},  // REDUCE
    {0x81, 2, 1, false, false, 0, 0, false},  // NEWOBJ
    {'b',  2, 1, false, false, 0, 0, false},  // BUILD
    {'a',  2, 1, false, false, 0, 0, false},  // APPEND
    {'s',  3, 1, false, false, 0, 0, false},  // SETITEM
    {'u',  0, 0, true,  false, 0, 0, false},  // SETITEMS
    {'e',  0, 0, true,  false, 0, 0, false},  // APPENDS
    {'2',  0, 1, false, false, 0, 0, false},  // DUP
};
// clang-format on

const Op* describe(unsigned char code) {
  for (const Op& op : kOps) {
    if (op.code == code) return &op;
  }
  return nullptr;
}

// Where the opcode at `p` ends (after its argument), or nullopt when it is not in the table or
// its argument runs past the end of `pickle`.
std::optional<std::size_t> opcode_end(const std::string& pickle, std::size_t p) {
  const Op* op = describe(static_cast<unsigned char>(pickle[p++]));
  if (op == nullptr) return std::nullopt;
  if (op->lines) {
    for (int i = 0; i < 2; ++i) {
      const auto nl = pickle.find('\n', p);
      if (nl == std::string::npos) return std::nullopt;
      p = nl + 1;
    }
  }
  std::size_t skip = static_cast<std::size_t>(op->arg);
  if (op->len_bytes > 0) {
    if (p + static_cast<std::size_t>(op->len_bytes) > pickle.size()) return std::nullopt;
    std::uint32_t len = 0;
    std::memcpy(&len, pickle.data() + p, static_cast<std::size_t>(op->len_bytes));
    skip = static_cast<std::size_t>(op->len_bytes) + len;
  }
  if (skip > pickle.size() - p) return std::nullopt;
  return p + skip;
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
  static const char kHeader[] =
      "\x80\x02"
      "ccollections\nOrderedDict\n";
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
    const std::size_t begin = p;
    const auto end = opcode_end(pickle, p);
    if (!end) return std::nullopt;
    const Op& op = *describe(code);
    p = *end;
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
    const Op& op = *describe(code);
    const std::size_t at = out.size();
    if (code == 's' || code == 'a') {
      // The dict or list with its key and value (or item) above it: a MARK goes in before the
      // key, so that the batch opcode takes the same one entry.
      const std::size_t taken = code == 's' ? 2 : 1;
      const std::size_t base = marks.empty() ? 0 : marks.back().depth;
      if (starts.size() < base + taken + 1) return std::nullopt;
      out.insert(starts[starts.size() - taken], 1, '(');
      out += code == 's' ? 'u' : 'e';
      starts.resize(starts.size() - taken);
      changed = true;
      p = *end;
      continue;
    }
    out.append(pickle, p, *end - p);
    p = *end;
    if (code == '.') return changed ? std::optional<std::string>(out) : std::nullopt;
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

std::optional<std::size_t> pickle_end(const std::string& data, std::size_t begin) {
  for (std::size_t p = begin; p < data.size();) {
    const bool stop = data[p] == '.';
    const auto end = opcode_end(data, p);
    if (!end) return std::nullopt;
    if (stop) return end;
    p = *end;
  }
  return std::nullopt;
}

}  // namespace flatface
