// Verification sets from files and from procedure: pairs lists (LFW and path lists), the
// lfw-pairs and insightface-bin plugins, and the synthetic data set.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "catch_compat.hpp"
#include "cli_test_support.hpp"
#include "plugin_host/factory.hpp"
#include "flatface/formats/lfw_pairs.hpp"
#include "flatface/formats/verification_bin.hpp"
#include "flatface/image_codec.hpp"

using catch_compat::Contains;
using flatface::Image;
using flatface::Options;

namespace {

namespace fs = std::filesystem;

const std::string kKz25 = std::string(FLATFACE_SHARED_DIR) + "/data/kz25/";

// One scratch folder for the whole test program, removed at exit.
fs::path scratch() {
  static const flatface::testing::TempDir dir("test-vsets");
  return dir.path;
}

const flatface::Registry& registry() {
  static std::unique_ptr<flatface::Registry> reg = flatface::open_registry({});
  return *reg;
}

using Setting = std::pair<std::string, Options::Value>;

flatface::PluginRef ref(const std::string& plugin, const std::vector<Setting>& settings) {
  Options o("dataset '" + plugin + "'", {"test.toml", 1, 1});
  for (const auto& [k, v] : settings) o.set(k, v);
  return {plugin, o};
}

Options::Value text(const std::string& s) {
  return {s, {"test.toml", 2, 1}};
}
Options::Value integer(std::int64_t v) {
  return {v, {"test.toml", 3, 1}};
}
Options::Value real(double v) {
  return {v, {"test.toml", 4, 1}};
}

Image solid(int height, int width, std::uint8_t r, std::uint8_t g, std::uint8_t b) {
  Image im{height, width, {}};
  for (int i = 0; i < height * width; ++i) im.pixels.insert(im.pixels.end(), {r, g, b});
  return im;
}

void write_bytes(const fs::path& p, const std::vector<std::uint8_t>& b) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// root/<name>/<name>_000k.png for k = 1..3, each a solid colour that encodes (person, k).
fs::path make_lfw_folder() {
  fs::path root = scratch() / "lfw";
  const std::vector<std::string> names{"Abel", "Bea", "Cid", "Dee"};
  for (std::size_t p = 0; p < names.size(); ++p)
    for (int k = 1; k <= 3; ++k) {
      char file[64];
      std::snprintf(file, sizeof file, "%s_%04d.png", names[p].c_str(), k);
      write_bytes(root / names[p] / file,
                  flatface::encode_png(solid(20, 16, static_cast<std::uint8_t>(40 * p),
                                             static_cast<std::uint8_t>(50 * k), 7)));
    }
  return root;
}

const std::string kLfwText = "2\t1\nAbel\t1\t2\nAbel\t1\tBea\t3\nCid\t2\t3\nCid\t1\tDee\t2\n";

}  // namespace

CATCH_TEST_CASE("an LFW pairs.txt expands names and numbers to name/name_NNNN.jpg") {
  auto pairs = flatface::parse_pairs(kLfwText, "pairs.txt");
  CATCH_REQUIRE(pairs.size() == 4);
  CATCH_CHECK(pairs[0].first == "Abel/Abel_0001.jpg");
  CATCH_CHECK(pairs[0].second == "Abel/Abel_0002.jpg");
  CATCH_CHECK(pairs[0].same);
  CATCH_CHECK(pairs[1].first == "Abel/Abel_0001.jpg");
  CATCH_CHECK(pairs[1].second == "Bea/Bea_0003.jpg");
  CATCH_CHECK_FALSE(pairs[1].same);
  CATCH_CHECK(pairs[3].line == 5);
  // Space-separated lines and a one-number header ("N same, then N different") work too.
  auto spaced = flatface::parse_pairs("1\nAbel 1 2\nAbel 1 Bea 3\n", "dev.txt");
  CATCH_CHECK(spaced.size() == 2);
}

CATCH_TEST_CASE("a pairs file whose header disagrees with its lines, or a bad line, is refused") {
  CATCH_CHECK_THROWS_WITH(flatface::parse_pairs("3\nAbel\t1\t2\n", "p.txt"),
                          Contains("p.txt: the header announces 6 pairs, but the file lists 1"));
  CATCH_CHECK_THROWS_WITH(flatface::parse_pairs("2 1\nAbel\t1\t2\nAbel 1\n", "p.txt"),
                          Contains("p.txt:3: expected 'name i j'"));
}

CATCH_TEST_CASE("kz25's test600.pairs.txt lists the .bin's 600 pairs with the same flags") {
  std::ifstream in(kKz25 + "test600.pairs.txt");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto pairs = flatface::parse_pairs(text, "test600.pairs.txt");
  CATCH_REQUIRE(pairs.size() == 600);
  CATCH_CHECK(pairs[0].first ==
              "faceid-processing/testing/Zhaniya_Djurinskaya/Zhaniya_Djurinskaya_0937.jpg");
  auto bin = flatface::read_verification_bin(kKz25 + "test600.bin");
  std::vector<bool> flags;
  for (const auto& p : pairs) flags.push_back(p.same);
  CATCH_CHECK(flags == bin.issame);
}

CATCH_TEST_CASE("path lists resolve under root, falling back to root/<identity>/<file>") {
  fs::path root = make_lfw_folder();
  fs::path list = scratch() / "paths.txt";
  std::ofstream(list) << "elsewhere/Abel/Abel_0001.png\tAbel/Abel_0002.png\t1\n"
                         "x/y/Cid/Cid_0003.png\tx/y/Dee/Dee_0001.png\t0\n";
  auto files = flatface::read_pairs_file(list.string(), root.string());
  CATCH_REQUIRE(files.files.size() == 4);
  CATCH_CHECK(files.files[0] == (root / "Abel" / "Abel_0001.png").string());
  CATCH_CHECK(files.files[1] == (root / "Abel/Abel_0002.png").string());
  CATCH_CHECK(files.files[3] == (root / "Dee" / "Dee_0001.png").string());
  CATCH_CHECK(files.issame == std::vector<bool>{true, false});

  std::ofstream(list) << "Abel/Abel_0001.png\tAbel/Abel_0009.png\t1\n";
  CATCH_CHECK_THROWS_WITH(flatface::read_pairs_file(list.string(), root.string()),
                          Contains("paths.txt:1: image '") && Contains("Abel_0009.png' not found"));
}

CATCH_TEST_CASE("the lfw-pairs plugin serves the listed images at their stored size") {
  fs::path root = make_lfw_folder();
  fs::path pairs = scratch() / "lfw_pairs.txt";
  // The LFW names end in .jpg; this folder has PNGs, so use a path list of the same pairs.
  std::ofstream(pairs) << "Abel/Abel_0001.png\tAbel/Abel_0002.png\t1\n"
                          "Abel/Abel_0001.png\tBea/Bea_0003.png\t0\n";
  auto set = flatface::make_verification_set(
      registry(),
      ref("lfw-pairs", {{"root", text(root.string())}, {"pairs", text(pairs.string())}}), 24, 0);
  CATCH_REQUIRE(set->num_pairs() == 2);
  CATCH_CHECK(set->issame() == std::vector<bool>{true, false});
  Image bea = set->image(3);  // Bea_0003: colour (40, 150, 7)
  // 20x16 on disk; the host, not the plugin, resizes to the input side 24.
  CATCH_CHECK(bea.height == 20);
  CATCH_CHECK(bea.width == 16);
  CATCH_CHECK(bea.pixels == solid(20, 16, 40, 150, 7).pixels);
}

CATCH_TEST_CASE("the lfw-pairs plugin reads an LFW pairs.txt over root/<name>/<name>_NNNN.jpg") {
  fs::path root = scratch() / "lfw_jpg";
  for (const char* name : {"Abel", "Bea", "Cid", "Dee"})
    for (int k = 1; k <= 3; ++k) {
      char file[64];
      std::snprintf(file, sizeof file, "%s_%04d.jpg", name, k);
      write_bytes(root / name / file, flatface::encode_jpeg(solid(16, 16, 128, 128, 128)));
    }
  fs::path pairs = scratch() / "lfw_real_pairs.txt";
  std::ofstream(pairs) << kLfwText;
  auto set = flatface::make_verification_set(
      registry(),
      ref("lfw-pairs", {{"root", text(root.string())}, {"pairs", text(pairs.string())}}), 16, 0);
  CATCH_CHECK(set->issame() == std::vector<bool>{true, false, true, false});
  CATCH_CHECK_THAT(set->describe(), Contains("4 pairs"));
}

CATCH_TEST_CASE("the insightface-bin plugin serves test600.bin's images as decoded RGB") {
  auto bin = flatface::read_verification_bin(kKz25 + "test600.bin");
  for (bool preload : {true, false}) {
    auto set = flatface::make_verification_set(
        registry(),
        ref("insightface-bin",
            {{"path", text(kKz25 + "test600.bin")}, {"preload", {preload, {"test.toml", 5, 1}}}}),
        112, 0);
    CATCH_REQUIRE(set->num_pairs() == 600);
    CATCH_CHECK(set->issame() == bin.issame);
    for (std::size_t i : {std::size_t{0}, std::size_t{601}, std::size_t{1199}}) {
      Image expected = flatface::decode_image(bin.images[i]);
      CATCH_REQUIRE(expected.height == 112);  // kz25 is aligned 112x112: no resize involved
      CATCH_CHECK(set->image(i).pixels == expected.pixels);
    }
  }
  // A smaller backbone input changes nothing here: the host resizes, not the plugin.
  auto small = flatface::make_verification_set(
      registry(), ref("insightface-bin", {{"path", text(kKz25 + "test600.bin")}}), 56, 0);
  CATCH_CHECK(small->image(3).height == 112);
  CATCH_CHECK(small->image(3).pixels == flatface::decode_image(bin.images[3]).pixels);
}

CATCH_TEST_CASE("the insightface-bin plugin names a missing file and a corrupt image") {
  CATCH_CHECK_THROWS_AS(
      flatface::make_verification_set(
          registry(), ref("insightface-bin", {{"path", text((scratch() / "none.bin").string())}}),
          112, 0),
      flatface::ConfigError);
  flatface::VerificationBin bad;
  bad.images = {flatface::encode_png(solid(4, 4, 1, 2, 3)), {0xff, 0xd8, 0xff, 0x00}};
  bad.issame = {true};
  fs::path file = scratch() / "corrupt.bin";
  flatface::write_verification_bin(file.string(), bad);
  CATCH_CHECK_THROWS_WITH(
      flatface::make_verification_set(
          registry(), ref("insightface-bin", {{"path", text(file.string())}}), 8, 0),
      Contains("corrupt.bin: image 1 (pair 0)"));
}

namespace {

std::vector<Setting> synthetic(std::int64_t seed, double nuisance = 0.5) {
  return {{"seed", integer(seed)},
          {"identities", integer(6)},
          {"images_per_identity", integer(4)},
          {"verification_identities", integer(5)},
          {"pairs", integer(20)},
          {"nuisance", real(nuisance)}};
}

}  // namespace

CATCH_TEST_CASE("synthetic data is a pure function of its options, not of the run seed") {
  auto a = flatface::make_train_set(registry(), ref("synthetic", synthetic(3)), 32, 0);
  auto b = flatface::make_train_set(registry(), ref("synthetic", synthetic(3)), 32, 99);
  auto c = flatface::make_train_set(registry(), ref("synthetic", synthetic(4)), 32, 0);
  CATCH_REQUIRE(a->size() == 24);
  for (std::size_t i : {0, 7, 23}) {
    CATCH_CHECK(a->get(i).image.pixels == b->get(i).image.pixels);
    CATCH_CHECK(a->get(i).image.pixels != c->get(i).image.pixels);
  }
  auto va = flatface::make_verification_set(registry(), ref("synthetic", synthetic(3)), 32, 0);
  auto vb = flatface::make_verification_set(registry(), ref("synthetic", synthetic(3)), 32, 5);
  auto vc = flatface::make_verification_set(registry(), ref("synthetic", synthetic(4)), 32, 0);
  for (std::size_t i = 0; i < 40; ++i) CATCH_CHECK(va->image(i).pixels == vb->image(i).pixels);
  CATCH_CHECK(va->image(0).pixels != vc->image(0).pixels);
}

CATCH_TEST_CASE("synthetic training samples carry label index / images_per_identity") {
  auto t = flatface::make_train_set(registry(), ref("synthetic", synthetic(0)), 32, 0);
  CATCH_CHECK(t->num_classes() == 6);
  CATCH_CHECK(t->size() == 24);
  for (std::size_t i = 0; i < 24; ++i)
    CATCH_CHECK(t->get(i).label == static_cast<std::int64_t>(i / 4));
  Image im = t->get(5).image;
  CATCH_CHECK(im.height == 32);
  CATCH_CHECK(im.width == 32);
  CATCH_CHECK(im.pixels.size() == 32u * 32u * 3u);
  CATCH_CHECK_THROWS_AS(t->get(24), flatface::RuntimeError);
}

CATCH_TEST_CASE("synthetic pairs alternate same and different, so every fold is balanced") {
  auto v = flatface::make_verification_set(registry(), ref("synthetic", synthetic(0)), 32, 0);
  const auto& issame = v->issame();
  CATCH_REQUIRE(issame.size() == 20);
  for (std::size_t i = 0; i < issame.size(); ++i) CATCH_CHECK(issame[i] == (i % 2 == 0));
  auto defaults = flatface::make_verification_set(registry(), ref("synthetic", {}), 16, 0);
  CATCH_CHECK(defaults->num_pairs() == 600);
  CATCH_CHECK(std::count(defaults->issame().begin(), defaults->issame().end(), true) == 300);
}

CATCH_TEST_CASE(
    "without nuisance, same pairs are one template and no identity is shared with "
    "the training set") {
  auto t = flatface::make_train_set(registry(), ref("synthetic", synthetic(0, 0.0)), 32, 0);
  auto v = flatface::make_verification_set(registry(), ref("synthetic", synthetic(0, 0.0)), 32, 0);
  std::set<std::vector<std::uint8_t>> train_templates;
  for (std::size_t i = 0; i < t->size(); ++i) train_templates.insert(t->get(i).image.pixels);
  CATCH_CHECK(train_templates.size() == 6);  // nuisance 0: one image per identity
  std::set<std::vector<std::uint8_t>> verification_templates;
  for (std::size_t p = 0; p < v->num_pairs(); ++p) {
    auto a = v->image(2 * p).pixels, b = v->image(2 * p + 1).pixels;
    CATCH_CHECK((a == b) == v->issame()[p]);
    CATCH_CHECK(train_templates.count(a) == 0);
    CATCH_CHECK(train_templates.count(b) == 0);
    verification_templates.insert(a);
    verification_templates.insert(b);
  }
  CATCH_CHECK(verification_templates.size() <= 5);
  CATCH_CHECK(verification_templates.size() >= 3);
}

CATCH_TEST_CASE("with nuisance, two samples of one synthetic identity differ") {
  auto v = flatface::make_verification_set(registry(), ref("synthetic", synthetic(0)), 32, 0);
  CATCH_REQUIRE(v->issame()[0]);
  CATCH_CHECK(v->image(0).pixels != v->image(1).pixels);
}

CATCH_TEST_CASE(
    "synthetic images are drawn at `size` (default: the input size) and the host resizes them") {
  auto s = synthetic(0);
  s.push_back({"size", integer(24)});
  auto t = flatface::make_train_set(registry(), ref("synthetic", s), 40, 0);
  CATCH_CHECK(t->get(0).image.height == 24);
  CATCH_CHECK(t->get(0).image.width == 24);
  auto at_input = flatface::make_train_set(registry(), ref("synthetic", synthetic(0)), 40, 0);
  CATCH_CHECK(at_input->get(0).image.height == 40);
}

CATCH_TEST_CASE("synthetic options out of range are refused naming the key") {
  CATCH_CHECK_THROWS_WITH(
      flatface::make_train_set(registry(), ref("synthetic", {{"nuisance", real(3.0)}}), 32, 0),
      Contains("test.toml:4:1") && Contains("nuisance must be in [0, 2]"));
  CATCH_CHECK_THROWS_WITH(
      flatface::make_verification_set(
          registry(), ref("synthetic", {{"verification_identities", integer(1)}}), 32, 0),
      Contains("verification_identities must be at least 2"));
  CATCH_CHECK_THROWS_WITH(
      flatface::make_train_set(registry(), ref("synthetic", {{"identitiez", integer(3)}}), 32, 0),
      Contains("unknown key 'identitiez'"));
}
