// MXNet RecordIO as insightface writes it: framing, IRHeader, index, the training layout, the
// `insightface-rec` plugin and `flatface data pack | info`.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "catch_compat.hpp"
#include "data_test_support.hpp"
#include "plugin_host/factory.hpp"
#include "flatface/formats/insightface_rec.hpp"
#include "flatface/formats/recordio.hpp"
#include "flatface/image_codec.hpp"

namespace rio = flatface::recordio;
using flatface::Image;
using flatface::InsightfaceRec;
using flatface::testing::contains;
using flatface::testing::runtime_error_of;
using flatface::testing::ScratchDir;
using flatface::testing::shared_data;
using flatface::testing::slurp;
using flatface::testing::spit;
using Bytes = std::vector<std::uint8_t>;

namespace {

Bytes str_bytes(const std::string& s) {
  return Bytes(s.begin(), s.end());
}

Bytes frame(const Bytes& payload) {
  Bytes out;
  rio::append_frame(out, payload.data(), payload.size());
  return out;
}

// The offsets of kz25's train.idx, read independently of parse_index.
std::map<std::uint64_t, std::uint64_t> kz25_offsets() {
  std::map<std::uint64_t, std::uint64_t> m;
  std::istringstream in(flatface::testing::text_of(shared_data("kz25/train.idx")));
  std::uint64_t k, o;
  while (in >> k >> o) m[k] = o;
  return m;
}

// A copy of kz25's three files in a scratch folder, for corrupting.
void copy_kz25(const ScratchDir& dir) {
  for (const char* f : {"train.rec", "train.idx", "property"}) {
    std::filesystem::copy_file(shared_data(std::string("kz25/") + f), dir / f);
  }
}

flatface::Options path_options(const std::string& path) {
  flatface::Options o("dataset 'insightface-rec'", flatface::SourcePos{"test.toml", 1, 1});
  o.set("path", flatface::Options::Value{path, flatface::SourcePos{"test.toml", 2, 1}});
  return o;
}

const flatface::Registry& plugins() {
  static const auto registry = flatface::open_registry({});
  return *registry;
}

Bytes raw_pixels(const std::string& path) {
  return slurp(path);
}

}  // namespace

CATCH_TEST_CASE("an IRHeader is packed as <IfQQ, little endian, with flag float labels after it") {
  const Bytes image = str_bytes("xy");
  rio::IRHeader h;
  h.label = 3.0f;  // float 3.0 = 0x40400000
  h.id = 7;
  Bytes plain = rio::pack(h, {}, image.data(), image.size());
  CATCH_CHECK(plain == Bytes{0, 0, 0, 0, 0, 0, 0x40, 0x40, 7, 0, 0, 0,   0,
                             0, 0, 0, 0, 0, 0, 0,    0,    0, 0, 0, 'x', 'y'});
  rio::Unpacked u = rio::unpack(plain.data(), plain.size());
  CATCH_CHECK(u.header.flag == 0);
  CATCH_CHECK(u.label() == 3.0f);
  CATCH_CHECK(u.header.id == 7);
  CATCH_CHECK(u.image_offset == 24);

  // With labels: flag = their count, the header's label field 0; 1.0 = 0x3f800000, 64 = 0x42800000.
  Bytes labelled = rio::pack(h, {1.0f, 64.0f}, nullptr, 0);
  CATCH_CHECK(labelled == Bytes{2, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0,    0,    0, 0, 0,    0,
                                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0x80, 0x42});
  u = rio::unpack(labelled.data(), labelled.size());
  CATCH_CHECK(u.labels == std::vector<float>{1.0f, 64.0f});
  CATCH_CHECK(u.label() == 1.0f);  // a training record's class is the first extra label
  CATCH_CHECK(u.image_offset == 32);
}

CATCH_TEST_CASE("a payload shorter than its IRHeader or its announced labels is an error") {
  Bytes short_payload(10, 0);
  CATCH_CHECK(contains(runtime_error_of([&] { rio::unpack(short_payload.data(), 10); }),
                       "shorter than the 24-byte IRHeader"));
  Bytes p = rio::pack({}, {1.0f}, nullptr, 0);
  p[0] = 5;  // flag 5 but only one float follows
  CATCH_CHECK(
      contains(runtime_error_of([&] { rio::unpack(p.data(), p.size()); }), "flag 5 announces"));
}

CATCH_TEST_CASE("a record is framed as magic, cflag << 29 | length, payload, zeros to 4 bytes") {
  Bytes f = frame(str_bytes("hello"));
  CATCH_CHECK(f == Bytes{0x0a, 0x23, 0xd7, 0xce, 5, 0, 0, 0, 'h', 'e', 'l', 'l', 'o', 0, 0, 0});
  auto src = rio::memory_source(f, "m.rec");
  rio::Frame back = rio::read_frame(*src, 0);
  CATCH_CHECK(back.payload == str_bytes("hello"));
  CATCH_CHECK(back.parts == 1);
  CATCH_CHECK(back.end == 16);
}

CATCH_TEST_CASE("a payload with the magic at an aligned offset is split into parts and rejoined") {
  const Bytes payload = {'a', 'b', 'c', 'd', 0x0a, 0x23, 0xd7, 0xce, 'e', 'f'};
  Bytes f = frame(payload);
  // Part 1 (cflag 1) "abcd"; the magic is dropped; part 2 (cflag 3) "ef" padded.
  CATCH_CHECK(f == Bytes{0x0a, 0x23, 0xd7, 0xce, 4, 0, 0, 0x20, 'a', 'b', 'c', 'd',
                         0x0a, 0x23, 0xd7, 0xce, 2, 0, 0, 0x60, 'e', 'f', 0,   0});
  auto src = rio::memory_source(f, "m.rec");
  rio::Frame back = rio::read_frame(*src, 0);
  CATCH_CHECK(back.payload == payload);
  CATCH_CHECK(back.parts == 2);
  CATCH_CHECK(back.end == f.size());

  const Bytes unaligned = {'a', 0x0a, 0x23, 0xd7, 0xce, 'b'};
  CATCH_CHECK(frame(unaligned).size() == 8 + 8);  // one part
}

CATCH_TEST_CASE("a continuation part where a record should start is an error") {
  Bytes f = frame(str_bytes("abcd"));
  f[7] = 0x40;  // cflag 2
  auto src = rio::memory_source(f, "m.rec");
  std::string what = runtime_error_of([&] { rio::read_frame(*src, 0, 9); });
  CATCH_CHECK(contains(what, "m.rec: record key 9 at byte offset 0"));
  CATCH_CHECK(contains(what, "cflag 2"));
}

CATCH_TEST_CASE("bad magic and truncated records are errors naming file, key and byte offset") {
  Bytes f = frame(str_bytes("first"));
  Bytes second = frame(str_bytes("second record"));
  f.insert(f.end(), second.begin(), second.end());
  Bytes bad = f;
  bad[16] = 0;  // second record's magic
  auto src = rio::memory_source(bad, "bad.rec");
  std::string what = runtime_error_of([&] { rio::read_frame(*src, 16, 2); });
  CATCH_CHECK(contains(what, "bad.rec: record key 2 at byte offset 16"));
  CATCH_CHECK(contains(what, "bad magic 0xced72300"));

  Bytes cut(f.begin(), f.begin() + 30);
  auto cut_src = rio::memory_source(cut, "cut.rec");
  what = runtime_error_of([&] { rio::read_frame(*cut_src, 16, 2); });
  CATCH_CHECK(contains(what, "cut.rec: record key 2 at byte offset 16"));
  CATCH_CHECK(contains(what, "declares 13 payload bytes, the file has 6"));
}

CATCH_TEST_CASE("the index is 'key<TAB>offset' lines; malformed lines are errors naming the line") {
  auto entries = rio::parse_index("0\t0\n1\t40\n\n7\t4200\n", "t.idx");
  CATCH_REQUIRE(entries.size() == 3);
  CATCH_CHECK(entries[2].key == 7);
  CATCH_CHECK(entries[2].offset == 4200);
  CATCH_CHECK(contains(runtime_error_of([] { rio::parse_index("0\t0\n1\tx\n", "t.idx"); }),
                       "t.idx:2: expected 'key<TAB>offset': missing offset"));
  CATCH_CHECK(contains(runtime_error_of([] { rio::parse_index("0\t0\n0\t8\n", "t.idx"); }),
                       "t.idx:2: key 0 already appeared on line 1"));
  CATCH_CHECK(contains(runtime_error_of([] { rio::parse_index("-1\t0\n", "t.idx"); }), "t.idx:1"));
}

CATCH_TEST_CASE("an index offset past the end of the .rec is refused on opening") {
  Bytes f = frame(str_bytes("only"));
  auto src = rio::memory_source(f, "m.rec");
  std::string what = runtime_error_of(
      [&] { rio::IndexedReader(src, rio::parse_index("0\t0\n1\t12\n", "m.idx"), "m.idx"); });
  CATCH_CHECK(contains(what, "m.idx: key 1 points at byte offset 12"));
  CATCH_CHECK(contains(what, "m.rec has 12 bytes"));
}

CATCH_TEST_CASE(
    "kz25's train.rec reads as 1845 images of 25 classes, matching an independent "
    "Python decode") {
  ScratchDir ref("kz25-ref");
  CATCH_REQUIRE(flatface::testing::reference_python("rec " + shared_data("kz25") + " " + ref.str() +
                                                    " 1 2 1000 1845") == 0);
  InsightfaceRec rec = InsightfaceRec::open(shared_data("kz25"));
  CATCH_CHECK(rec.size() == 1845);
  CATCH_CHECK(rec.num_classes() == 25);
  CATCH_CHECK(rec.has_header());
  CATCH_CHECK(rec.image_key_end() == 1846);
  CATCH_CHECK(rec.identity_key_end() == 1871);

  std::map<std::uint64_t, std::int64_t> python_labels;
  std::istringstream in(flatface::testing::text_of(ref / "labels.txt"));
  std::uint64_t key;
  std::int64_t label;
  while (in >> key >> label) python_labels[key] = label;
  CATCH_REQUIRE(python_labels.size() == 1845);
  std::size_t agree = 0;
  for (std::size_t i = 0; i < rec.size(); ++i) {
    auto r = rec.read(i);
    agree += python_labels.at(r.key) == r.label;
  }
  CATCH_CHECK(agree == 1845);

  // Identity records cover the image keys contiguously, one per class in label order.
  auto ranges = rec.identity_ranges();
  CATCH_REQUIRE(ranges.size() == 25);
  CATCH_CHECK(ranges.front().first == 1);
  CATCH_CHECK(ranges.back().end == 1846);
  for (std::size_t c = 0; c < ranges.size(); ++c) {
    CATCH_CHECK(python_labels.at(ranges[c].first) == static_cast<std::int64_t>(c));
    CATCH_CHECK(python_labels.at(ranges[c].end - 1) == static_cast<std::int64_t>(c));
  }

  for (std::uint64_t k : {1, 2, 1000, 1845}) {
    auto r = rec.read(k - 1);
    CATCH_REQUIRE(r.key == k);
    Image image = flatface::decode_image(r.image_data(), r.image_size());
    CATCH_CHECK(image.width == 112);
    CATCH_CHECK(image.height == 112);
    CATCH_CHECK(image.pixels == raw_pixels(ref / (std::to_string(k) + ".rgb")));
  }
}

CATCH_TEST_CASE("records read from several threads at once are the same as read one by one") {
  InsightfaceRec rec = InsightfaceRec::open(shared_data("kz25"));
  std::vector<Bytes> sequential(200), parallel(200);
  for (std::size_t i = 0; i < 200; ++i) sequential[i] = rec.read(i * 9).payload;
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (std::size_t i = t; i < 200; i += 4) parallel[i] = rec.read(i * 9).payload;
    });
  }
  for (auto& th : threads) th.join();
  CATCH_CHECK(parallel == sequential);
}

CATCH_TEST_CASE(
    "the insightface-rec plugin serves decoded images and labels at their stored size") {
  ScratchDir ref("kz25-plugin");
  CATCH_REQUIRE(flatface::testing::reference_python("rec " + shared_data("kz25") + " " + ref.str() +
                                                    " 1845") == 0);
  auto set = flatface::make_train_set(
      plugins(), {"insightface-rec", path_options(shared_data("kz25"))}, 112, 0);
  CATCH_CHECK(set->size() == 1845);
  CATCH_CHECK(set->num_classes() == 25);
  auto last = set->get(1844);
  CATCH_CHECK(last.label == 24);
  CATCH_CHECK(last.image.pixels == raw_pixels(ref / "1845.rgb"));

  // A relative path resolves against the experiment's folder (DatasetArgs::base_dir).
  const auto& entry = plugins().get(flatface::PluginKind::dataset, "insightface-rec");
  auto small =
      entry.entry.train_set(flatface::DatasetArgs{path_options("kz25"), shared_data(""), 56, 0});
  auto s = small->get(0);
  // A 56 input does not shrink the 112x112 records: the host resizes, not the plugin.
  CATCH_CHECK(s.image.width == 112);
  CATCH_CHECK(s.image.height == 112);
  CATCH_CHECK(s.image.pixels == set->get(0).image.pixels);
  CATCH_CHECK(s.label == 0);
}

CATCH_TEST_CASE("a folder without train.rec is a configuration error naming the option") {
  ScratchDir empty("no-rec");
  std::string what;
  try {
    flatface::make_train_set(plugins(), {"insightface-rec", path_options(empty / "missing")}, 112,
                             0);
  } catch (const flatface::ConfigError& e) {
    what = e.what();
  }
  CATCH_CHECK(contains(what, "test.toml:2:1"));
  CATCH_CHECK(contains(what, "is not a folder"));
}

CATCH_TEST_CASE("a corrupted magic in a copy of kz25 is reported with the key and byte offset") {
  ScratchDir dir("kz25-magic");
  copy_kz25(dir);
  const auto offsets = kz25_offsets();
  Bytes rec = slurp(dir / "train.rec");
  for (int i = 0; i < 4; ++i) rec[offsets.at(5) + i] = 0;
  spit(dir / "train.rec", rec);
  InsightfaceRec r = InsightfaceRec::open(dir.str());
  std::string what = runtime_error_of([&] { r.read(4); });
  CATCH_CHECK(contains(what, dir / "train.rec"));
  CATCH_CHECK(contains(what, "record key 5 at byte offset " + std::to_string(offsets.at(5))));
  CATCH_CHECK(contains(what, "bad magic 0x00000000"));
  CATCH_CHECK(r.read(3).key == 4);  // the neighbours still read
}

CATCH_TEST_CASE("a truncated copy of kz25 gives one clear error, at opening or at the cut record") {
  const auto offsets = kz25_offsets();
  {
    ScratchDir dir("kz25-cut-open");
    copy_kz25(dir);
    std::filesystem::resize_file(dir / "train.rec", offsets.at(1000) + 100);
    std::string what = runtime_error_of([&] { InsightfaceRec::open(dir.str()); });
    CATCH_CHECK(contains(what, dir / "train.idx"));
    CATCH_CHECK(
        contains(what, "key 1001 points at byte offset " + std::to_string(offsets.at(1001))));
  }
  {
    ScratchDir dir("kz25-cut-read");
    copy_kz25(dir);
    std::filesystem::resize_file(dir / "train.rec", offsets.at(1870) + 20);
    InsightfaceRec r = InsightfaceRec::open(dir.str());
    std::string what = runtime_error_of([&] { r.identity_ranges(); });
    CATCH_CHECK(
        contains(what, "record key 1870 at byte offset " + std::to_string(offsets.at(1870))));
    CATCH_CHECK(contains(what, "truncated"));
    CATCH_CHECK(contains(what, "declares 32 payload bytes, the file has 12"));
  }
}

CATCH_TEST_CASE("a label outside [0, num_classes) is an error naming the record") {
  ScratchDir dir("bad-label");
  {
    rio::Writer w(dir / "train.rec", dir / "train.idx");
    w.write(0, rio::pack({}, {2.0f, 2.0f}, nullptr, 0));
    rio::IRHeader h;
    h.label = 3.0f;
    Bytes png = flatface::encode_png(Image{1, 1, {1, 2, 3}});
    w.write(1, rio::pack(h, {}, png.data(), png.size()));
  }
  spit(dir / "property", str_bytes("2,112,112\n"));
  InsightfaceRec r = InsightfaceRec::open(dir.str());
  std::string what = runtime_error_of([&] { r.read(0); });
  CATCH_CHECK(contains(what, "record key 1 at byte offset 40"));
  CATCH_CHECK(contains(what, "label 3.000000 is not a class index in [0, 2)"));
}

CATCH_TEST_CASE("a broken JPEG inside a record is an error naming the record, not a crash") {
  ScratchDir dir("bad-jpeg");
  InsightfaceRec kz = InsightfaceRec::open(shared_data("kz25"));
  auto first = kz.read(0);
  Bytes half(first.image_data(), first.image_data() + first.image_size() / 2);
  {
    rio::Writer w(dir / "train.rec", dir / "train.idx");
    w.write(0, rio::pack({}, {2.0f, 2.0f}, nullptr, 0));
    w.write(1, rio::pack({}, {}, half.data(), half.size()));
  }
  spit(dir / "property", str_bytes("1,112,112"));
  auto set =
      flatface::make_train_set(plugins(), {"insightface-rec", path_options(dir.str())}, 112, 0);
  std::string what = runtime_error_of([&] { set->get(0); });
  CATCH_CHECK(
      contains(what, "train.rec: record key 1 at byte offset 40: image: corrupt JPEG data"));
}

CATCH_TEST_CASE(
    "data pack writes an insightface folder that reads back: copied bytes, lossless "
    "PGM/PPM, labels by folder name") {
  ScratchDir dir("pack");
  const std::string src = dir / "faces";
  std::filesystem::create_directories(src + "/alice");
  std::filesystem::create_directories(src + "/bob");
  Image noise{12, 16, {}};
  for (int i = 0; i < 12 * 16 * 3; ++i)
    noise.pixels.push_back(static_cast<std::uint8_t>(i * 37 % 251));
  Image smooth{12, 16, {}};
  for (int i = 0; i < 12 * 16 * 3; ++i)
    smooth.pixels.push_back(static_cast<std::uint8_t>(i / 3 % 200));
  spit(src + "/alice/a.png", flatface::encode_png(noise));
  spit(src + "/alice/b.jpg", flatface::encode_jpeg(smooth, 90));
  Bytes pgm = str_bytes("P5\n16 12\n255\n");
  for (int i = 0; i < 16 * 12; ++i) pgm.push_back(static_cast<std::uint8_t>(i));
  spit(src + "/alice/c.pgm", pgm);
  Bytes ppm = str_bytes("P6 16 12 255\n");
  ppm.insert(ppm.end(), noise.pixels.begin(), noise.pixels.end());
  spit(src + "/bob/d.ppm", ppm);

  CATCH_REQUIRE(
      flatface::testing::run_cli_to_file("data pack " + src + " " + dir / "out", dir / "log") == 0);
  InsightfaceRec rec = InsightfaceRec::open(dir / "out");
  CATCH_REQUIRE(rec.size() == 4);
  CATCH_CHECK(rec.num_classes() == 2);
  CATCH_CHECK(flatface::testing::text_of(dir / "out/property") == "2,12,16");
  auto ranges = rec.identity_ranges();
  CATCH_REQUIRE(ranges.size() == 2);
  CATCH_CHECK(ranges[0].first == 1);
  CATCH_CHECK(ranges[0].end == 4);
  CATCH_CHECK(ranges[1].first == 4);
  CATCH_CHECK(ranges[1].end == 5);

  std::vector<std::int64_t> labels;
  for (std::size_t i = 0; i < 4; ++i) labels.push_back(rec.read(i).label);
  CATCH_CHECK(labels == std::vector<std::int64_t>{0, 0, 0, 1});
  auto payload = [&](std::size_t i) {
    auto r = rec.read(i);
    return Bytes(r.image_data(), r.image_data() + r.image_size());
  };
  CATCH_CHECK(payload(0) == slurp(src + "/alice/a.png"));  // PNG and JPEG are stored as is
  CATCH_CHECK(payload(1) == slurp(src + "/alice/b.jpg"));
  Bytes c = payload(2), d = payload(3);
  CATCH_CHECK(flatface::sniff_image_format(c.data(), c.size()) == flatface::ImageFormat::png);
  CATCH_CHECK(flatface::decode_image(c).pixels == flatface::decode_image(pgm).pixels);
  CATCH_CHECK(flatface::decode_image(d).pixels == noise.pixels);

  CATCH_REQUIRE(flatface::testing::run_cli_to_file(
                    "data pack --reencode png " + src + " " + dir / "png", dir / "log2") == 0);
  InsightfaceRec png = InsightfaceRec::open(dir / "png");
  auto r = png.read(1);  // the JPEG, decoded and stored losslessly as PNG
  Bytes b(r.image_data(), r.image_data() + r.image_size());
  CATCH_CHECK(flatface::sniff_image_format(b.data(), b.size()) == flatface::ImageFormat::png);
  CATCH_CHECK(flatface::decode_image(b).pixels ==
              flatface::decode_image(slurp(src + "/alice/b.jpg")).pixels);

  CATCH_REQUIRE(
      flatface::testing::run_cli_to_file(
          "data pack --reencode jpeg --quality 80 " + src + " " + dir / "jpg", dir / "log3") == 0);
  InsightfaceRec jpg = InsightfaceRec::open(dir / "jpg");
  for (std::size_t i = 0; i < jpg.size(); ++i) {
    auto j = jpg.read(i);
    CATCH_CHECK(flatface::sniff_image_format(j.image_data(), j.image_size()) ==
                flatface::ImageFormat::jpeg);
  }
}

CATCH_TEST_CASE("data pack names an unreadable image file") {
  ScratchDir dir("pack-bad");
  std::filesystem::create_directories(dir / "faces/x");
  spit(dir / "faces/x/broken.png", str_bytes("not a png"));
  CATCH_CHECK(flatface::testing::run_cli_to_file("data pack " + (dir / "faces") + " " + dir / "out",
                                                 dir / "log") == 1);
  std::string log = flatface::testing::text_of(dir / "log");
  CATCH_CHECK(contains(log, "broken.png"));
  CATCH_CHECK(contains(log, "unknown image format"));
}

CATCH_TEST_CASE("data info describes kz25's layout, labels and payloads") {
  ScratchDir dir("info");
  CATCH_REQUIRE(
      flatface::testing::run_cli_to_file("data info " + shared_data("kz25"), dir / "log") == 0);
  std::string log = flatface::testing::text_of(dir / "log");
  CATCH_CHECK(contains(log, "property:  25 classes, images 112x112"));
  CATCH_CHECK(contains(log, "index:     1871 records"));
  CATCH_CHECK(contains(log, "image keys [1, 1846), identity keys [1846, 1871)"));
  CATCH_CHECK(contains(log, "images:    1845"));
  CATCH_CHECK(contains(log, "25 labels seen, 0..24"));
  CATCH_CHECK(contains(log, "flag 0 (label in the header) 1845"));
  CATCH_CHECK(contains(log, "payloads:  jpeg 1845"));
  CATCH_CHECK(contains(log, "sizes:     112x112 1845"));
  CATCH_CHECK(contains(log, "identity records: 25"));
}

CATCH_TEST_CASE("data info reads a verification .bin's pairs") {
  ScratchDir dir("info-bin");
  CATCH_REQUIRE(flatface::testing::run_cli_to_file("data info " + shared_data("kz25/test600.bin"),
                                                   dir / "log") == 0);
  std::string log = flatface::testing::text_of(dir / "log");
  CATCH_CHECK(contains(log, "pairs:  600 (300 same, 300 different)"));
  CATCH_CHECK(contains(log, "images: 1200; jpeg 1200"));
}

// Not run by default: `test_recordio "[.bench]"` prints kz25 JPEG decode throughput per thread.
CATCH_TEST_CASE("kz25 JPEG decode throughput", "[.bench]") {
  InsightfaceRec rec = InsightfaceRec::open(shared_data("kz25"));
  std::vector<Bytes> jpegs;
  for (std::size_t i = 0; i < rec.size(); ++i) {
    auto r = rec.read(i);
    jpegs.emplace_back(r.image_data(), r.image_data() + r.image_size());
  }
  for (int round = 0; round < 2; ++round) {
    auto t0 = std::chrono::steady_clock::now();
    std::size_t bytes = 0;
    for (int rep = 0; rep < 3; ++rep)
      for (const auto& j : jpegs) bytes += flatface::decode_image(j).pixels.size();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto t1 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < rec.size(); ++i) {
      auto r = rec.read(i);
      bytes += flatface::decode_image(r.image_data(), r.image_size()).pixels.size();
    }
    double s2 = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    std::cout << "decode only: " << 3 * jpegs.size() / s
              << " images/s per thread; read+decode: " << rec.size() / s2 << " images/s (" << bytes
              << " bytes)\n";
  }
}
