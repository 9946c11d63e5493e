// Python's pickle opcodes in one table: the byte, the name, the argument that follows the byte
// and what the opcode does to the stack, as Python's pickletools documents them (test_pickle
// checks the table against pickletools). Both pickle readers take their facts from here: the
// verification-file reader (formats/pickle.cpp), which runs a safe subset, and the torch.save
// scanner (ordered_dict_pickle.cpp), which only steps over opcodes. Header-only, so that the
// fuzz targets build it without the rest of the host.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>

namespace flatface::pickle {

// What follows the opcode byte.
enum class Argument : std::uint8_t {
  none,
  fixed,    // `size` bytes: a little-endian integer (or BINFLOAT's big-endian double)
  counted,  // a little-endian length of `size` bytes, then that many bytes
  lines,    // `size` newline-terminated lines of text
};

struct Opcode {
  std::uint8_t code;
  const char* name;  // as in pickletools
  Argument argument;
  int size;  // see Argument
  // The stack: `to_mark` takes every item down to the last MARK (and the MARK), then `pops` items
  // go and `pushes` come; `mark` pushes a MARK. Items an opcode changes in place below its MARK
  // (APPENDS' list) are not counted, and DUP counts as one push.
  int pops, pushes;
  bool to_mark, mark;
  // Whether the torch.save scanner steps over it: the opcodes of torch.save's protocol-2 pickles
  // and a few neighbours. The scanner gives up on any other, leaving the pickle to libtorch.
  bool torch_save;
};

// clang-format off
inline constexpr Opcode kOpcodes[] = {
  //  code  name                argument           size pops push to_mark mark  torch_save
    {0x28, "MARK",              Argument::none,    0,   0,   0,   false,  true,  true},
    {0x29, "EMPTY_TUPLE",       Argument::none,    0,   0,   1,   false,  false, true},
    {0x2e, "STOP",              Argument::none,    0,   1,   0,   false,  false, true},
    {0x30, "POP",               Argument::none,    0,   1,   0,   false,  false, false},
    {0x31, "POP_MARK",          Argument::none,    0,   0,   0,   true,   false, false},
    {0x32, "DUP",               Argument::none,    0,   0,   1,   false,  false, true},
    {0x42, "BINBYTES",          Argument::counted, 4,   0,   1,   false,  false, true},
    {0x43, "SHORT_BINBYTES",    Argument::counted, 1,   0,   1,   false,  false, true},
    {0x46, "FLOAT",             Argument::lines,   1,   0,   1,   false,  false, false},
    {0x47, "BINFLOAT",          Argument::fixed,   8,   0,   1,   false,  false, true},
    {0x49, "INT",               Argument::lines,   1,   0,   1,   false,  false, false},
    {0x4a, "BININT",            Argument::fixed,   4,   0,   1,   false,  false, true},
    {0x4b, "BININT1",           Argument::fixed,   1,   0,   1,   false,  false, true},
    {0x4c, "LONG",              Argument::lines,   1,   0,   1,   false,  false, false},
    {0x4d, "BININT2",           Argument::fixed,   2,   0,   1,   false,  false, true},
    {0x4e, "NONE",              Argument::none,    0,   0,   1,   false,  false, true},
    {0x50, "PERSID",            Argument::lines,   1,   0,   1,   false,  false, false},
    {0x51, "BINPERSID",         Argument::none,    0,   1,   1,   false,  false, true},
    {0x52, "REDUCE",            Argument::none,    0,   2,   1,   false,  false, true},
    {0x53, "STRING",            Argument::lines,   1,   0,   1,   false,  false, false},
    {0x54, "BINSTRING",         Argument::counted, 4,   0,   1,   false,  false, true},
    {0x55, "SHORT_BINSTRING",   Argument::counted, 1,   0,   1,   false,  false, true},
    {0x56, "UNICODE",           Argument::lines,   1,   0,   1,   false,  false, false},
    {0x58, "BINUNICODE",        Argument::counted, 4,   0,   1,   false,  false, true},
    {0x5d, "EMPTY_LIST",        Argument::none,    0,   0,   1,   false,  false, true},
    {0x61, "APPEND",            Argument::none,    0,   2,   1,   false,  false, true},
    {0x62, "BUILD",             Argument::none,    0,   2,   1,   false,  false, true},
    {0x63, "GLOBAL",            Argument::lines,   2,   0,   1,   false,  false, true},
    {0x64, "DICT",              Argument::none,    0,   0,   1,   true,   false, true},
    {0x65, "APPENDS",           Argument::none,    0,   0,   0,   true,   false, true},
    {0x67, "GET",               Argument::lines,   1,   0,   1,   false,  false, false},
    {0x68, "BINGET",            Argument::fixed,   1,   0,   1,   false,  false, true},
    {0x69, "INST",              Argument::lines,   2,   0,   1,   true,   false, false},
    {0x6a, "LONG_BINGET",       Argument::fixed,   4,   0,   1,   false,  false, true},
    {0x6c, "LIST",              Argument::none,    0,   0,   1,   true,   false, true},
    {0x6f, "OBJ",               Argument::none,    0,   0,   1,   true,   false, false},
    {0x70, "PUT",               Argument::lines,   1,   0,   0,   false,  false, false},
    {0x71, "BINPUT",            Argument::fixed,   1,   0,   0,   false,  false, true},
    {0x72, "LONG_BINPUT",       Argument::fixed,   4,   0,   0,   false,  false, true},
    {0x73, "SETITEM",           Argument::none,    0,   3,   1,   false,  false, true},
    {0x74, "TUPLE",             Argument::none,    0,   0,   1,   true,   false, true},
    {0x75, "SETITEMS",          Argument::none,    0,   0,   0,   true,   false, true},
    {0x7d, "EMPTY_DICT",        Argument::none,    0,   0,   1,   false,  false, true},
    {0x80, "PROTO",             Argument::fixed,   1,   0,   0,   false,  false, true},
    {0x81, "NEWOBJ",            Argument::none,    0,   2,   1,   false,  false, true},
    {0x82, "EXT1",              Argument::fixed,   1,   0,   1,   false,  false, false},
    {0x83, "EXT2",              Argument::fixed,   2,   0,   1,   false,  false, false},
    {0x84, "EXT4",              Argument::fixed,   4,   0,   1,   false,  false, false},
    {0x85, "TUPLE1",            Argument::none,    0,   1,   1,   false,  false, true},
    {0x86, "TUPLE2",            Argument::none,    0,   2,   1,   false,  false, true},
    {0x87, "TUPLE3",            Argument::none,    0,   3,   1,   false,  false, true},
    {0x88, "NEWTRUE",           Argument::none,    0,   0,   1,   false,  false, true},
    {0x89, "NEWFALSE",          Argument::none,    0,   0,   1,   false,  false, true},
    {0x8a, "LONG1",             Argument::counted, 1,   0,   1,   false,  false, true},
    {0x8b, "LONG4",             Argument::counted, 4,   0,   1,   false,  false, false},
    {0x8c, "SHORT_BINUNICODE",  Argument::counted, 1,   0,   1,   false,  false, false},
    {0x8d, "BINUNICODE8",       Argument::counted, 8,   0,   1,   false,  false, false},
    {0x8e, "BINBYTES8",         Argument::counted, 8,   0,   1,   false,  false, false},
    {0x8f, "EMPTY_SET",         Argument::none,    0,   0,   1,   false,  false, false},
    {0x90, "ADDITEMS",          Argument::none,    0,   0,   0,   true,   false, false},
    {0x91, "FROZENSET",         Argument::none,    0,   0,   1,   true,   false, false},
    {0x92, "NEWOBJ_EX",         Argument::none,    0,   3,   1,   false,  false, false},
    {0x93, "STACK_GLOBAL",      Argument::none,    0,   2,   1,   false,  false, false},
    {0x94, "MEMOIZE",           Argument::none,    0,   1,   1,   false,  false, false},
    {0x95, "FRAME",             Argument::fixed,   8,   0,   0,   false,  false, false},
    {0x96, "BYTEARRAY8",        Argument::counted, 8,   0,   1,   false,  false, false},
    {0x97, "NEXT_BUFFER",       Argument::none,    0,   0,   1,   false,  false, false},
    {0x98, "READONLY_BUFFER",   Argument::none,    0,   1,   1,   false,  false, false},
};
// clang-format on

// The byte of the opcode named `name`, for `case code_of("BINPUT"):`; a name not in the table
// does not compile there.
constexpr std::uint8_t code_of(const char* name) {
  for (const Opcode& op : kOpcodes) {
    std::size_t i = 0;
    while (op.name[i] != '\0' && op.name[i] == name[i]) ++i;
    if (op.name[i] == name[i]) return op.code;
  }
  throw std::invalid_argument("not a pickle opcode name");
}

// The table's row for `code`, or nullptr for a byte that is no opcode.
inline const Opcode* find_opcode(std::uint8_t code) {
  static const std::array<const Opcode*, 256> by_code = [] {
    std::array<const Opcode*, 256> index{};
    for (const Opcode& op : kOpcodes) index[op.code] = &op;
    return index;
  }();
  return by_code[code];
}

// The name of a pickle opcode ("BINBYTES"), or "unknown".
inline const char* opcode_name(std::uint8_t code) {
  const Opcode* op = find_opcode(code);
  return op != nullptr ? op->name : "unknown";
}

}  // namespace flatface::pickle
