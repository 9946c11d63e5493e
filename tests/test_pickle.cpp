// The safe pickle subset reader and the verification .bin format: hand-built Python 2 and
// Python 3 pickles, numpy arrays pickled by Python itself, refusals, truncation, the real kz25
// files, and a writer whose output Python reads back.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "catch_compat.hpp"
#include "cli_test_support.hpp"
#include "flatface/formats/verification_bin.hpp"
#include "flatface/image_codec.hpp"
#include "flatface/options.hpp"
#include "formats/pickle.hpp"
#include "formats/pickle_opcodes.hpp"

using catch_compat::Contains;
using flatface::RuntimeError;
using flatface::pickle::Object;
using Bytes = std::vector<std::uint8_t>;

namespace {

namespace fs = std::filesystem;

const std::string kKz25 = std::string(FLATFACE_SHARED_DIR) + "/data/kz25/";

// One scratch folder for the whole test program, removed at exit.
fs::path scratch() {
  static const flatface::testing::TempDir dir("test-pickle");
  return dir.path;
}

void write_file(const fs::path& p, const Bytes& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

Bytes read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Runs a Python script with FLATFACE_PYTHON (numpy, PIL) and returns its stdout.
std::string python(const std::string& script, const std::string& args = "") {
  fs::path file = scratch() / "script.py";
  fs::path out = scratch() / "script.out";
  std::ofstream(file) << script;
  std::string cmd =
      std::string(FLATFACE_PYTHON) + " " + file.string() + " " + args + " > " + out.string();
  int rc = std::system(cmd.c_str());
  CATCH_REQUIRE(rc == 0);
  std::ifstream in(out);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

flatface::pickle::LoadResult load(const Bytes& b) {
  return flatface::pickle::load(b.data(), b.size(), "test.pkl");
}

std::string load_error(const Bytes& b) {
  try {
    load(b);
  } catch (const RuntimeError& e) {
    return e.what();
  }
  return "(no error)";
}

Bytes bytes_of(const std::string& s) {
  return Bytes(s.begin(), s.end());
}

void append(Bytes& out, const std::string& s) {
  out.insert(out.end(), s.begin(), s.end());
}
void append(Bytes& out, const Bytes& b) {
  out.insert(out.end(), b.begin(), b.end());
}

// A string literal's bytes, embedded NULs included.
template <std::size_t N>
Bytes lit(const char (&s)[N]) {
  return Bytes(s, s + N - 1);
}

void append_le(Bytes& out, std::uint64_t v, int width) {
  for (int i = 0; i < width; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

std::string payload(std::size_t n, int salt) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>((i * 7 + static_cast<std::size_t>(salt) * 31) % 256);
  return s;
}

// What `pickle.dump((bins, issame), f, protocol=2)` writes under Python 2: str payloads
// (SHORT_BINSTRING below 256 bytes, BINSTRING above), a BINPUT after every object, and the
// second image reused through the memo (BINGET), as Python does for the same object twice.
Bytes python2_pickle(const std::string& small, const std::string& large) {
  Bytes b{0x80, 0x02, ']', 'q', 0x00, '('};
  b.push_back('U');
  b.push_back(static_cast<std::uint8_t>(small.size()));
  append(b, small);
  append(b, std::string("q\x01", 2));
  b.push_back('T');
  append_le(b, large.size(), 4);
  append(b, large);
  append(b, std::string("q\x02", 2));
  append(b, std::string("h\x02", 2));  // BINGET 2: the large image again
  append(b, std::string("h\x01", 2));  // BINGET 1: the small image again
  b.push_back('e');                    // APPENDS
  append(b, std::string("]q\x03(", 4));
  b.push_back(0x88);  // NEWTRUE
  b.push_back(0x89);  // NEWFALSE
  b.push_back('e');
  b.push_back(0x86);  // TUPLE2
  append(b, std::string("q\x04.", 3));
  return b;
}

}  // namespace

CATCH_TEST_CASE("a Python 2 protocol-2 pickle of str images and bools reads as bytes and flags") {
  const std::string small = payload(200, 1), large = payload(1000, 2);
  Bytes b = python2_pickle(small, large);
  auto r = load(b);
  CATCH_CHECK(r.protocol == 2);
  const Object& top = *r.value;
  CATCH_REQUIRE(top.type == Object::Type::tuple);
  CATCH_REQUIRE(top.items.size() == 2);
  const Object& images = *top.items[0];
  CATCH_REQUIRE(images.type == Object::Type::list);
  CATCH_REQUIRE(images.items.size() == 4);
  CATCH_CHECK(images.items[0]->data == small);
  CATCH_CHECK(images.items[1]->data == large);
  CATCH_CHECK(images.items[2]->data == large);
  CATCH_CHECK(images.items[3]->data == small);
  CATCH_CHECK(images.items[0]->python2_str);
  const Object& flags = *top.items[1];
  CATCH_REQUIRE(flags.items.size() == 2);
  CATCH_CHECK(flags.items[0]->type == Object::Type::boolean);
  CATCH_CHECK(flags.items[0]->integer == 1);
  CATCH_CHECK(flags.items[1]->integer == 0);

  fs::path file = scratch() / "py2.bin";
  write_file(file, b);
  flatface::VerificationBin bin = flatface::read_verification_bin(file.string());
  CATCH_REQUIRE(bin.images.size() == 4);
  CATCH_CHECK(bin.images[1] == bytes_of(large));
  CATCH_CHECK(bin.issame == std::vector<bool>{true, false});
  CATCH_CHECK_THAT(bin.format, Contains("protocol 2") && Contains("Python 2 str"));
}

CATCH_TEST_CASE("Python itself reads the hand-built Python 2 pickle the same way") {
  // Guards the test fixture: the bytes above are a real pickle, not only one our reader accepts.
  fs::path file = scratch() / "py2_check.bin";
  write_file(file, python2_pickle(payload(200, 1), payload(1000, 2)));
  std::string out = python(
      "import pickle,sys\n"
      "b,s=pickle.load(open(sys.argv[1],'rb'),encoding='bytes')\n"
      "print([len(x) for x in b], [x[:3].hex() for x in b], s, b[1] is b[2])\n",
      file.string());
  CATCH_CHECK(out ==
              "[200, 1000, 1000, 200] ['1f262d', '3e454c', '3e454c', '1f262d'] [True, False] "
              "True\n");
}

CATCH_TEST_CASE("the opcode table agrees with Python's pickletools on every opcode") {
  // Each opcode's byte, name, argument and stack effect, as pickletools describes them, in the
  // table's conventions: items from the MARK up are taken by `to_mark`, an item below the MARK
  // that the opcode changes in place is not counted, and DUP is one push.
  std::string expected = python(R"(import pickletools as pt
sizes = {pt.TAKEN_FROM_ARGUMENT1: 1, pt.TAKEN_FROM_ARGUMENT4: 4, pt.TAKEN_FROM_ARGUMENT4U: 4,
         pt.TAKEN_FROM_ARGUMENT8U: 8}
for o in sorted(pt.opcodes, key=lambda o: ord(o.code)):
    a = o.arg
    if a is None: arg, size = 'none', 0
    elif a.n >= 0: arg, size = 'fixed', a.n
    elif a.n == pt.UP_TO_NEWLINE: arg, size = 'lines', 2 if a.name.endswith('_pair') else 1
    else: arg, size = 'counted', sizes[a.n]
    before = [s.name for s in o.stack_before]
    after = [s.name for s in o.stack_after]
    to_mark, mark = 'mark' in before, 'mark' in after
    if to_mark: pops, pushes = 0, len(after) - before.index('mark')
    elif mark: pops, pushes = 0, 0
    elif o.name == 'DUP': pops, pushes = 0, 1
    else: pops, pushes = len(before), len(after)
    print('%02x %s %s %d %d %d %d %d' % (ord(o.code), o.name, arg, size, pops, pushes, to_mark, mark))
)");
  std::ostringstream table;
  const char* arguments[] = {"none", "fixed", "counted", "lines"};
  for (const auto& op : flatface::pickle::kOpcodes) {
    char code[4];
    std::snprintf(code, sizeof code, "%02x", op.code);
    table << code << ' ' << op.name << ' ' << arguments[static_cast<int>(op.argument)] << ' '
          << op.size << ' ' << op.pops << ' ' << op.pushes << ' ' << op.to_mark << ' ' << op.mark
          << '\n';
  }
  CATCH_CHECK(table.str() == expected);
  // Lookups by byte and by name read the same rows.
  CATCH_CHECK(std::string(flatface::pickle::opcode_name(0x8c)) == "SHORT_BINUNICODE");
  CATCH_CHECK(std::string(flatface::pickle::opcode_name(0xff)) == "unknown");
  static_assert(flatface::pickle::code_of("BINPUT") == 'q');
  CATCH_CHECK(flatface::pickle::find_opcode('q')->size == 1);
}

CATCH_TEST_CASE("a protocol-4 pickle with FRAME, MEMOIZE and all bytes opcodes reads correctly") {
  Bytes body{']', 0x94, '('};  // EMPTY_LIST MEMOIZE MARK
  body.push_back('C');         // SHORT_BINBYTES
  body.push_back(3);
  append(body, "abc");
  body.push_back(0x94);
  body.push_back('B');  // BINBYTES
  append_le(body, 300, 4);
  append(body, payload(300, 5));
  body.push_back(0x8e);  // BINBYTES8
  append_le(body, 2, 8);
  append(body, "xy");
  body.push_back('h');  // BINGET 1: "abc"
  body.push_back(1);
  body.push_back('e');  // APPENDS
  append(body, lit("]\x94(\x88\x89\x88\x89"
                   "e\x86\x94."));  // flags, TUPLE2, STOP
  Bytes b{0x80, 0x04, 0x95};        // PROTO 4, FRAME <len>
  append_le(b, body.size(), 8);
  b.insert(b.end(), body.begin(), body.end());

  auto r = load(b);
  CATCH_CHECK(r.protocol == 4);
  const auto& images = r.value->items.at(0)->items;
  CATCH_REQUIRE(images.size() == 4);
  CATCH_CHECK(images[0]->data == "abc");
  CATCH_CHECK(images[1]->data == payload(300, 5));
  CATCH_CHECK(images[2]->data == "xy");
  CATCH_CHECK(images[3]->data == "abc");
  CATCH_CHECK_FALSE(images[0]->python2_str);
  const auto& flags = r.value->items.at(1)->items;
  CATCH_REQUIRE(flags.size() == 4);
  CATCH_CHECK(flags[2]->integer == 1);
  CATCH_CHECK(flags[3]->integer == 0);
}

CATCH_TEST_CASE("integers of every width, tuples, None and text memo keys decode to their values") {
  // (BININT1 255, BININT2 65535, BININT -2, LONG1 -129, LONG1 2^40, None, ('x',)) with a
  // protocol-0 PUT/GET pair for the last item.
  Bytes b{0x80, 0x02, '(', 'K', 0xff, 'M', 0xff, 0xff, 'J', 0xfe, 0xff, 0xff, 0xff};
  append(b, lit("\x8a\x02\x7f\xff"));                  // -129 = 0xff7f
  append(b, lit("\x8a\x06\x00\x00\x00\x00\x00\x01"));  // 2^40
  b.push_back('N');
  append(b, lit("\x8c\x01x\x85p7\ng7\nt."));  // ('x',), PUT 7, GET 7: it appears twice
  auto r = load(b);
  const auto& v = r.value->items;
  CATCH_REQUIRE(v.size() == 8);
  CATCH_CHECK(v[0]->integer == 255);
  CATCH_CHECK(v[1]->integer == 65535);
  CATCH_CHECK(v[2]->integer == -2);
  CATCH_CHECK(v[3]->integer == -129);
  CATCH_CHECK(v[4]->integer == (std::int64_t{1} << 40));
  CATCH_CHECK(v[5]->type == Object::Type::none);
  CATCH_CHECK(v[6]->items.at(0)->data == "x");
  CATCH_CHECK(v[7] == v[6]);
}

CATCH_TEST_CASE("numpy uint8 and bool arrays pickled by Python read as bytes and flags") {
  // Every protocol numpy's pickling takes a different path for: 2 (_codecs.encode for bytes),
  // 3 and 4 (_reconstruct + BUILD) and 5 (_frombuffer with BYTEARRAY8).
  std::string out = python(
      "import pickle,sys,numpy as np\n"
      "imgs=[np.frombuffer(bytes([255,216,0,1,2,128,200]),dtype=np.uint8),\n"
      "      np.arange(300,dtype=np.uint8).copy(), np.zeros(0,dtype=np.uint8), "
      "np.array([7],np.uint8)]\n"
      "for p in (2,3,4,5):\n"
      "  pickle.dump((imgs, np.array([True,False])), open(sys.argv[1]+'/np%d.bin'%p,'wb'), "
      "protocol=p)\n"
      "  pickle.dump((imgs, [np.bool_(False), np.bool_(True)]), "
      "open(sys.argv[1]+'/sc%d.bin'%p,'wb'), protocol=p)\n",
      scratch().string());
  CATCH_CHECK(out.empty());
  Bytes arange(300);
  for (int i = 0; i < 300; ++i) arange[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(i);
  for (int p = 2; p <= 5; ++p) {
    CATCH_SECTION("protocol " + std::to_string(p)) {
      auto bin = flatface::read_verification_bin(
          (scratch() / ("np" + std::to_string(p) + ".bin")).string());
      CATCH_REQUIRE(bin.images.size() == 4);
      CATCH_CHECK(bin.images[0] == Bytes{255, 216, 0, 1, 2, 128, 200});
      CATCH_CHECK(bin.images[1] == arange);
      CATCH_CHECK(bin.images[2].empty());
      CATCH_CHECK(bin.images[3] == Bytes{7});
      CATCH_CHECK(bin.issame == std::vector<bool>{true, false});
      CATCH_CHECK_THAT(bin.format, Contains("numpy uint8 arrays") && Contains("numpy bool array"));

      auto scalars = flatface::read_verification_bin(
          (scratch() / ("sc" + std::to_string(p) + ".bin")).string());
      CATCH_CHECK(scalars.issame == std::vector<bool>{false, true});
    }
  }
}

CATCH_TEST_CASE("a global outside the numpy allow-list is refused with its opcode and offset") {
  Bytes b{0x80, 0x02};
  append(b, "cos\nsystem\n)R.");
  CATCH_CHECK(load_error(b) ==
              "test.pkl: unsupported pickle opcode 0x63 ('GLOBAL') at byte offset 2: global "
              "'os.system' is not allowed (only numpy's uint8/bool array reconstruction is read)");
  // The same through STACK_GLOBAL (protocol 4): the offset is the STACK_GLOBAL's.
  Bytes s{0x80, 0x04, 0x8c, 8};
  append(s, "builtins");
  s.push_back(0x8c);
  s.push_back(4);
  append(s, "eval");
  s.push_back(0x93);
  CATCH_CHECK_THAT(load_error(s), Contains("opcode 0x93 ('STACK_GLOBAL') at byte offset 18") &&
                                      Contains("'builtins.eval'"));
}

CATCH_TEST_CASE("REDUCE and BUILD outside numpy's reconstruction pattern are refused") {
  // REDUCE on something that is not an allowed global: None(*()).
  CATCH_CHECK_THAT(load_error({0x80, 0x02, 'N', ')', 'R', '.'}),
                   Contains("unsupported pickle opcode 0x52 ('REDUCE') at byte offset 4"));
  // An allowed global called with the wrong arguments: numpy.dtype('f4', False, True).
  Bytes d{0x80, 0x02};
  append(d, lit("cnumpy\ndtype\nX\x02\x00\x00\x00"
                "f4\x89\x88\x87R."));
  CATCH_CHECK_THAT(load_error(d), Contains("opcode 0x52 ('REDUCE') at byte offset 25") &&
                                      Contains("numpy dtype 'f4'"));
  // BUILD on a plain list.
  CATCH_CHECK_THAT(load_error({0x80, 0x02, ']', 'N', 'b', '.'}),
                   Contains("unsupported pickle opcode 0x62 ('BUILD') at byte offset 4"));
}

CATCH_TEST_CASE("opcodes outside the subset are refused by name, e.g. INST, OBJ and dicts") {
  CATCH_CHECK(load_error(bytes_of("(ios\nsystem\n.")) ==
              "test.pkl: unsupported pickle opcode 0x69 ('INST') at byte offset 1");
  CATCH_CHECK_THAT(load_error({0x80, 0x02, '}', '.'}),
                   Contains("0x7d ('EMPTY_DICT') at byte offset 2"));
  CATCH_CHECK_THAT(load_error({0x80, 0x02, 0x81}), Contains("0x81 ('NEWOBJ') at byte offset 2"));
  CATCH_CHECK_THAT(load_error({0x80, 0x02, 0xff}), Contains("0xff ('unknown') at byte offset 2"));
}

CATCH_TEST_CASE("malformed pickles name the problem instead of crashing") {
  CATCH_CHECK_THAT(load_error({0x80, 0x02, 'a'}), Contains("APPEND") && Contains("stack is empty"));
  CATCH_CHECK_THAT(load_error({0x80, 0x02, 'e'}), Contains("no MARK"));
  CATCH_CHECK_THAT(load_error({0x80, 0x02, 'h', 9}), Contains("memo key 9 was never stored"));
  // A list appended into itself would make a cycle.
  CATCH_CHECK_THAT(load_error({0x80, 0x02, ']', 'q', 0, 'h', 0, 'a', '.'}),
                   Contains("a list inside a list"));
}

CATCH_TEST_CASE("a truncated file is reported with the opcode and byte offset where it ends") {
  Bytes real = read_file(kKz25 + "test600.bin");
  CATCH_REQUIRE(real.size() > 5000);
  // Cut at byte 100: the FRAME at offset 2 announces 66929 bytes (pickletools), more than remain.
  Bytes cut(real.begin(), real.begin() + 100);
  CATCH_CHECK_THAT(load_error(cut), Contains("truncated pickle: opcode 0x95 ('FRAME') at byte "
                                             "offset 2 needs 66929 bytes from byte offset 11") &&
                                        Contains("ends at byte offset 100"));
  // Without the 9-byte FRAME opcode the first image's BINBYTES (a 4-byte length of 2925; the
  // next opcode in the file is at 2944) starts at offset 14 - 9 = 5 and is cut short.
  Bytes unframed(real.begin(), real.begin() + 2);
  unframed.insert(unframed.end(), real.begin() + 11, real.begin() + 100);
  CATCH_CHECK_THAT(load_error(unframed),
                   Contains("truncated pickle: opcode 0x42 ('BINBYTES') at byte offset 5 needs "
                            "2925 bytes from byte offset 10, but the data ends at byte offset 91"));
  // Nothing but complete opcodes, and no STOP.
  CATCH_CHECK_THAT(load_error({0x80, 0x02, ']'}),
                   Contains("ends at byte offset 3 before the STOP"));
  CATCH_CHECK_THAT(load_error({}), Contains("ends at byte offset 0"));
}

CATCH_TEST_CASE("kz25 test600.bin holds 600 pairs, 300 same, as 1200 JPEG images") {
  auto bin = flatface::read_verification_bin(kKz25 + "test600.bin");
  CATCH_REQUIRE(bin.images.size() == 1200);
  CATCH_REQUIRE(bin.issame.size() == 600);
  CATCH_CHECK(std::count(bin.issame.begin(), bin.issame.end(), true) == 300);
  CATCH_CHECK_THAT(bin.format, Contains("protocol 5") && Contains("bytes"));
  // The pairs file lists the same order: its first line is a "same" pair, its last a different.
  CATCH_CHECK(bin.issame.front());
  CATCH_CHECK_FALSE(bin.issame.back());
}

CATCH_TEST_CASE("the third-party all-positive .bin holds 749 same pairs") {
  auto bin = flatface::read_verification_bin(kKz25 + "third_party_all_positive.bin");
  CATCH_CHECK(bin.images.size() == 1498);
  CATCH_CHECK(bin.issame == std::vector<bool>(749, true));
  CATCH_CHECK_THAT(bin.format, Contains("protocol 4"));
}

CATCH_TEST_CASE("images from the real .bin equal Python's bytes and decode to PIL's pixels") {
  auto bin = flatface::read_verification_bin(kKz25 + "test600.bin");
  for (std::size_t index : {std::size_t{0}, std::size_t{777}, std::size_t{1199}}) {
    // Python writes the image's bytes, and PIL's decode of them as raw RGB.
    python(
        "import pickle,sys,numpy as np,io\n"
        "from PIL import Image\n"
        "b,s=pickle.load(open(sys.argv[1],'rb'),encoding='bytes')\n"
        "i=int(sys.argv[2]); open(sys.argv[3]+'/img.jpg','wb').write(b[i])\n"
        "open(sys.argv[3]+'/"
        "img.rgb','wb').write(np.asarray(Image.open(io.BytesIO(b[i])).convert('RGB')).tobytes())\n",
        kKz25 + "test600.bin " + std::to_string(index) + " " + scratch().string());
    CATCH_CHECK(bin.images[index] == read_file(scratch() / "img.jpg"));
    flatface::Image ours = flatface::decode_image(bin.images[index]);
    Bytes theirs = read_file(scratch() / "img.rgb");
    CATCH_REQUIRE(ours.pixels.size() == theirs.size());
    // Two JPEG decoders may differ by an IDCT rounding step; they agree to within a level or two.
    double total = 0;
    int worst = 0;
    for (std::size_t k = 0; k < theirs.size(); ++k) {
      int d = std::abs(int(ours.pixels[k]) - int(theirs[k]));
      total += d;
      worst = std::max(worst, d);
    }
    CATCH_CHECK(total / static_cast<double>(theirs.size()) < 0.5);
    CATCH_CHECK(worst <= 8);
  }
}

CATCH_TEST_CASE("the writer's .bin is read by Python's pickle.load(encoding='bytes') and by us") {
  flatface::VerificationBin bin;
  bin.images = {bytes_of(payload(10, 1)), bytes_of(payload(255, 2)), bytes_of(payload(256, 3)),
                bytes_of(payload(70000, 4))};
  bin.issame = {false, true};
  fs::path file = scratch() / "written.bin";
  flatface::write_verification_bin(file.string(), bin);
  std::string out = python(
      "import pickle,sys,hashlib\n"
      "b,s=pickle.load(open(sys.argv[1],'rb'),encoding='bytes')\n"
      "print(type(b).__name__, [type(x).__name__ for x in b], [len(x) for x in b], s)\n"
      "print(hashlib.md5(b''.join(b)).hexdigest())\n",
      file.string());
  std::string expected_md5 = python(
      "import hashlib\n"
      "def p(n,salt): return bytes((i*7+salt*31)%256 for i in range(n))\n"
      "print(hashlib.md5(p(10,1)+p(255,2)+p(256,3)+p(70000,4)).hexdigest())\n");
  CATCH_CHECK(out ==
              "list ['bytes', 'bytes', 'bytes', 'bytes'] [10, 255, 256, 70000] "
              "[False, True]\n" +
                  expected_md5);
  auto back = flatface::read_verification_bin(file.string());
  CATCH_CHECK(back.images == bin.images);
  CATCH_CHECK(back.issame == bin.issame);
  CATCH_CHECK_FALSE(fs::exists(file.string() + ".tmp"));
}

CATCH_TEST_CASE("the writer refuses image and flag counts that do not pair up") {
  flatface::VerificationBin bin;
  bin.images = {Bytes{1}, Bytes{2}, Bytes{3}};
  bin.issame = {true};
  CATCH_CHECK_THROWS_WITH(flatface::write_verification_bin((scratch() / "bad.bin").string(), bin),
                          Contains("3 images but 1 issame flags"));
}

CATCH_TEST_CASE("a .bin whose image and flag counts disagree is refused naming both counts") {
  fs::path file = scratch() / "mismatch.bin";
  python(
      "import "
      "pickle,sys\npickle.dump(([b'a',b'b',b'c'],[True]),open(sys.argv[1],'wb'),protocol=4)\n",
      file.string());
  CATCH_CHECK_THROWS_WITH(flatface::read_verification_bin(file.string()),
                          Contains("mismatch.bin: 3 images but 1 issame flags"));
}
