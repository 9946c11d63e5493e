// `flatface data pairs`: verification .bin files from an image folder or a pairs list, read back
// by insightface's own loader call (Python pickle.load with encoding='bytes') and by us.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>

#include "catch_compat.hpp"
#include "cli_test_support.hpp"
#include "flatface/formats/image_folder.hpp"
#include "flatface/formats/verification_bin.hpp"
#include "flatface/image_codec.hpp"

using catch_compat::Contains;
using flatface::testing::text_of;
using Bytes = std::vector<std::uint8_t>;

namespace {

namespace fs = std::filesystem;

const std::string kOrl = std::string(FLATFACE_SHARED_DIR) + "/data/orl";

// One scratch folder for the whole test program, removed at exit.
fs::path scratch() {
  static const flatface::testing::TempDir dir("test-pairs");
  return dir.path;
}

struct Result {
  int code;
  std::string out, err;
};

Result run(const std::string& exe, const std::string& args) {
  fs::path out = scratch() / "stdout", err = scratch() / "stderr";
  std::string cmd = exe + " " + args + " > " + out.string() + " 2> " + err.string();
  int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text_of(out), text_of(err)};
}

Result cli(const std::string& args) {
  return run(FLATFACE_CLI, args);
}

}  // namespace

CATCH_TEST_CASE("pairs drawn from ORL alternate same/different and match the folder's identities") {
  fs::path out = scratch() / "orl.bin";
  Result r = cli("data pairs --folder " + kOrl + " --count 40 --seed 3 " + out.string());
  CATCH_REQUIRE(r.code == 0);
  CATCH_CHECK_THAT(r.out, Contains("40 pairs (20 same, 20 different)"));

  // insightface's loader: pickle.load(f, encoding='bytes') gives lists of bytes and bools.
  Result py =
      run(FLATFACE_PYTHON,
          "-c \"import pickle,sys; b,s=pickle.load(open(sys.argv[1],'rb'),encoding='bytes');"
          " print(len(b), all(type(x) is bytes and x[:4]==b'\\x89PNG' for x in b), s[:4],"
          " sum(s))\" " +
              out.string());
  CATCH_CHECK(py.out == "80 True [True, False, True, False] 20\n");

  // Every image is an ORL picture, re-encoded losslessly: find its identity by its pixels.
  flatface::ImageFolderListing orl = flatface::list_image_folder(kOrl);
  std::map<Bytes, std::string> owner;
  for (std::size_t i = 0; i < orl.identities.size(); ++i)
    for (const auto& f : orl.images[i])
      owner[flatface::load_image_file(f).pixels] = orl.identities[i];
  auto bin = flatface::read_verification_bin(out.string());
  std::set<std::pair<Bytes, Bytes>> seen;
  for (std::size_t p = 0; p < bin.issame.size(); ++p) {
    Bytes a = flatface::decode_image(bin.images[2 * p]).pixels;
    Bytes b = flatface::decode_image(bin.images[2 * p + 1]).pixels;
    CATCH_REQUIRE(owner.count(a) == 1);
    CATCH_REQUIRE(owner.count(b) == 1);
    CATCH_CHECK((owner[a] == owner[b]) == bin.issame[p]);
    CATCH_CHECK(a != b);
    CATCH_CHECK(seen.insert(std::minmax(a, b)).second);  // no pair twice
  }
}

CATCH_TEST_CASE("the same seed writes the same file, another seed other pairs") {
  fs::path a = scratch() / "a.bin", b = scratch() / "b.bin", c = scratch() / "c.bin";
  CATCH_REQUIRE(cli("data pairs --folder " + kOrl + " --count 10 --seed 1 " + a.string()).code ==
                0);
  CATCH_REQUIRE(cli("data pairs --folder " + kOrl + " --count 10 --seed 1 " + b.string()).code ==
                0);
  CATCH_REQUIRE(cli("data pairs --folder " + kOrl + " --count 10 --seed 2 " + c.string()).code ==
                0);
  CATCH_CHECK(text_of(a) == text_of(b));
  CATCH_CHECK(text_of(a) != text_of(c));
}

CATCH_TEST_CASE("asking for more distinct pairs than a folder holds is a usage error") {
  // ORL: 40 people x 10 images allow 40 * 45 = 1800 same pairs; 4000 pairs need 2000.
  Result r = cli("data pairs --folder " + kOrl + " --count 4000 " + (scratch() / "x.bin").string());
  CATCH_CHECK(r.code == 2);
  CATCH_CHECK_THAT(r.err, Contains("allows 1800 same"));
}

CATCH_TEST_CASE("pairs from an LFW pairs list copy the JPEG bytes as they are") {
  fs::path root = scratch() / "lfw";
  std::map<std::string, std::string> bytes;
  for (const char* name : {"Ann", "Bob"})
    for (int k = 1; k <= 2; ++k) {
      char file[64];
      std::snprintf(file, sizeof file, "%s_%04d.jpg", name, k);
      flatface::Image im{
          8, 8, Bytes(8 * 8 * 3, static_cast<std::uint8_t>(60 * k + (name[0] == 'B' ? 100 : 0)))};
      Bytes jpeg = flatface::encode_jpeg(im);
      fs::create_directories(root / name);
      std::ofstream(root / name / file, std::ios::binary)
          .write(reinterpret_cast<const char*>(jpeg.data()),
                 static_cast<std::streamsize>(jpeg.size()));
      bytes[std::string(name) + "/" + file] = std::string(jpeg.begin(), jpeg.end());
    }
  fs::path list = scratch() / "pairs.txt";
  std::ofstream(list) << "1\nAnn\t1\t2\nAnn\t2\tBob\t1\n";
  fs::path out = scratch() / "lfw.bin";
  Result r = cli("data pairs --lfw-pairs " + list.string() + " --root " + root.string() + " " +
                 out.string());
  CATCH_REQUIRE(r.code == 0);
  auto bin = flatface::read_verification_bin(out.string());
  CATCH_REQUIRE(bin.images.size() == 4);
  CATCH_CHECK(bin.issame == std::vector<bool>{true, false});
  auto as_string = [](const Bytes& b) { return std::string(b.begin(), b.end()); };
  CATCH_CHECK(as_string(bin.images[0]) == bytes["Ann/Ann_0001.jpg"]);
  CATCH_CHECK(as_string(bin.images[1]) == bytes["Ann/Ann_0002.jpg"]);
  CATCH_CHECK(as_string(bin.images[2]) == bytes["Ann/Ann_0002.jpg"]);
  CATCH_CHECK(as_string(bin.images[3]) == bytes["Bob/Bob_0001.jpg"]);
}

CATCH_TEST_CASE("data pairs needs exactly one source") {
  CATCH_CHECK(cli("data pairs " + (scratch() / "n.bin").string()).code == 2);
  CATCH_CHECK(cli("data pairs --folder " + kOrl + " --lfw-pairs x --root " + kOrl + " " +
                  (scratch() / "n.bin").string())
                  .code == 2);
}

CATCH_TEST_CASE(
    "--from converts any set a dataset plugin recognises, its pixels kept exactly as PNG") {
  const std::string source = std::string(FLATFACE_SHARED_DIR) + "/data/kz25/test600.bin";
  fs::path out = scratch() / "from.bin";
  Result r = cli("data pairs --from " + source + " " + out.string());
  CATCH_REQUIRE(r.code == 0);
  CATCH_CHECK_THAT(r.out, Contains("plugin 'insightface-bin'"));
  auto original = flatface::read_verification_bin(source);
  auto converted = flatface::read_verification_bin(out.string());
  CATCH_CHECK(converted.issame == original.issame);
  CATCH_REQUIRE(converted.images.size() == 1200);
  for (std::size_t i : {std::size_t{0}, std::size_t{599}, std::size_t{1199}}) {
    CATCH_CHECK(
        flatface::sniff_image_format(converted.images[i].data(), converted.images[i].size()) ==
        flatface::ImageFormat::png);
    CATCH_CHECK(flatface::decode_image(converted.images[i]).pixels ==
                flatface::decode_image(original.images[i]).pixels);
  }
  CATCH_CHECK(cli("data pairs --from " + kOrl + " --folder " + kOrl + " " + out.string()).code ==
              2);
}
