// Image folders (root/<identity>/<image>): listing, the `image-folder` plugin as a training set and
// as verification pairs, identity splits, and `flatface data info | pack` on ORL.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "catch_compat.hpp"
#include "data_test_support.hpp"
#include "plugin_host/factory.hpp"
#include "flatface/formats/image_folder.hpp"
#include "flatface/formats/insightface_rec.hpp"
#include "flatface/image_codec.hpp"

using flatface::Image;
using flatface::Options;
using flatface::testing::contains;
using flatface::testing::runtime_error_of;
using flatface::testing::ScratchDir;
using flatface::testing::shared_data;
using flatface::testing::slurp;
using flatface::testing::spit;

namespace {

const flatface::Registry& plugins() {
  static const auto registry = flatface::open_registry({});
  return *registry;
}

Options folder_options(const std::string& path) {
  Options o("dataset 'image-folder'", flatface::SourcePos{"test.toml", 1, 1});
  o.set("path", Options::Value{path, flatface::SourcePos{"test.toml", 2, 1}});
  return o;
}

template <typename T>
Options with(Options o, const std::string& key, T value) {
  o.set(key, Options::Value{value, flatface::SourcePos{"test.toml", 3, 1}});
  return o;
}

std::shared_ptr<flatface::TrainSet> train_set(const Options& o, std::int64_t input = 112) {
  return flatface::make_train_set(plugins(), {"image-folder", o}, input, 0);
}

std::shared_ptr<flatface::VerificationSet> pairs_set(const Options& o, std::int64_t input = 4) {
  return flatface::make_verification_set(plugins(), {"image-folder", o}, input, 0);
}

// A folder of `ids` identities "id00".."id09", `per` 4x4 PNG images each, solid colour:
// red = 20 * identity + 5, green = 30 * image + 1, so a decoded pixel tells where it came from.
void write_colour_folder(const std::string& root, int ids, int per) {
  for (int i = 0; i < ids; ++i) {
    std::string dir = root + "/id0" + std::to_string(i);
    std::filesystem::create_directories(dir);
    for (int k = 0; k < per; ++k) {
      Image image{4, 4, {}};
      for (int p = 0; p < 16; ++p) {
        image.pixels.push_back(static_cast<std::uint8_t>(20 * i + 5));
        image.pixels.push_back(static_cast<std::uint8_t>(30 * k + 1));
        image.pixels.push_back(0);
      }
      spit(dir + "/" + std::to_string(k) + ".png", flatface::encode_png(image));
    }
  }
}

int identity_of(const Image& image) {
  return (image.pixels[0] - 5) / 20;
}
int index_of(const Image& image) {
  return (image.pixels[1] - 1) / 30;
}

}  // namespace

CATCH_TEST_CASE("the ORL folder lists 40 identities in name order with 10 images each") {
  auto listing = flatface::list_image_folder(shared_data("orl"));
  CATCH_REQUIRE(listing.identities.size() == 40);
  CATCH_CHECK(listing.identities[0] == "s1");
  CATCH_CHECK(listing.identities[1] == "s10");  // byte order, as folder names sort
  CATCH_CHECK(listing.identities[39] == "s9");
  CATCH_CHECK(listing.num_images() == 400);
  for (const auto& files : listing.images) CATCH_CHECK(files.size() == 10);
  CATCH_CHECK(std::filesystem::path(listing.images[0][1]).filename() == "10.pgm");
}

CATCH_TEST_CASE(
    "an ORL image decodes to three equal grey channels as PIL reads it, and resizes "
    "like torch's bilinear interpolation") {
  ScratchDir ref("orl-ref");
  const std::string file = shared_data("orl/s7/3.pgm");
  CATCH_REQUIRE(flatface::testing::reference_python("pgm " + file + " 112 " + ref / "img") == 0);
  Image image = flatface::load_image_file(file);
  CATCH_CHECK(image.width == 92);
  CATCH_CHECK(image.height == 112);
  CATCH_CHECK(image.pixels == slurp(ref / "img.rgb"));
  Image resized = flatface::resize(image, 112);
  auto expected = slurp(ref / "img.resized.rgb");
  CATCH_REQUIRE(resized.pixels.size() == expected.size());
  int worst = 0;  // float rounding may put a value on the other side of .5
  for (std::size_t i = 0; i < expected.size(); ++i) {
    worst = std::max(worst, std::abs(int{resized.pixels[i]} - int{expected[i]}));
  }
  CATCH_CHECK(worst <= 1);
}

CATCH_TEST_CASE(
    "the image-folder plugin serves ORL as 400 images of 40 identities at their stored 92x112 "
    "(the host resizes)") {
  auto set = train_set(folder_options(shared_data("orl")));
  CATCH_CHECK(set->size() == 400);
  CATCH_CHECK(set->num_classes() == 40);
  auto first = set->get(0);
  CATCH_CHECK(first.label == 0);
  CATCH_CHECK(first.image.width == 92);
  CATCH_CHECK(first.image.height == 112);
  for (std::size_t p = 0; p < first.image.pixels.size(); p += 3) {
    CATCH_REQUIRE(first.image.pixels[p] == first.image.pixels[p + 1]);
    CATCH_REQUIRE(first.image.pixels[p] == first.image.pixels[p + 2]);
  }
  CATCH_CHECK(set->get(10).label == 1);    // s10
  CATCH_CHECK(set->get(399).label == 39);  // s9
}

CATCH_TEST_CASE("train and verification splits hold disjoint identities that make up the folder") {
  ScratchDir dir("split");
  write_colour_folder(dir / "faces", 10, 3);
  Options base = with(with(folder_options(dir / "faces"), "verification_fraction", 0.3), "seed",
                      std::int64_t{4});
  auto train = train_set(with(base, "split", std::string("train")), 4);
  CATCH_REQUIRE(train->num_classes() == 7);
  CATCH_REQUIRE(train->size() == 21);
  std::set<int> train_ids;
  std::map<std::int64_t, int> id_of_label;
  for (std::size_t i = 0; i < train->size(); ++i) {
    auto s = train->get(i);
    train_ids.insert(identity_of(s.image));
    id_of_label[s.label] = identity_of(s.image);
  }
  CATCH_CHECK(train_ids.size() == 7);
  CATCH_REQUIRE(id_of_label.size() == 7);
  for (auto it = std::next(id_of_label.begin()); it != id_of_label.end(); ++it) {
    CATCH_CHECK(std::prev(it)->second < it->second);  // labels follow folder-name order
  }

  auto ver =
      pairs_set(with(with(base, "split", std::string("verification")), "pairs", std::int64_t{40}));
  std::set<int> ver_ids;
  for (std::size_t i = 0; i < 2 * ver->num_pairs(); ++i) ver_ids.insert(identity_of(ver->image(i)));
  CATCH_CHECK(ver_ids.size() == 3);
  for (int id : ver_ids) CATCH_CHECK(train_ids.count(id) == 0);
}

CATCH_TEST_CASE(
    "verification pairs alternate same and different, the same pairs from one "
    "identity and two of its images") {
  ScratchDir dir("pairs");
  write_colour_folder(dir / "faces", 6, 4);
  auto set = pairs_set(with(folder_options(dir / "faces"), "pairs", std::int64_t{30}));
  CATCH_REQUIRE(set->num_pairs() == 30);
  const auto& issame = set->issame();
  for (std::size_t p = 0; p < 30; ++p) {
    CATCH_CHECK(issame[p] == (p % 2 == 0));
    Image a = set->image(2 * p), b = set->image(2 * p + 1);
    CATCH_CHECK((identity_of(a) == identity_of(b)) == issame[p]);
    if (issame[p]) CATCH_CHECK(index_of(a) != index_of(b));
  }
}

CATCH_TEST_CASE("the pairs are the same for the same seed and change with the seed") {
  ScratchDir dir("pairs-seed");
  write_colour_folder(dir / "faces", 6, 4);
  auto signature = [&](std::int64_t seed) {
    auto set = pairs_set(with(folder_options(dir / "faces"), "seed", seed));
    std::vector<int> sig;
    for (std::size_t i = 0; i < 2 * set->num_pairs(); ++i) {
      Image im = set->image(i);
      sig.push_back(identity_of(im) * 10 + index_of(im));
    }
    return sig;
  };
  CATCH_CHECK(signature(1).size() == 600);  // 300 pairs by default
  CATCH_CHECK(signature(1) == signature(1));
  CATCH_CHECK(signature(1) != signature(2));
}

CATCH_TEST_CASE("a split that leaves too few identities is a configuration error") {
  ScratchDir dir("split-small");
  write_colour_folder(dir / "faces", 4, 2);
  std::string what;
  try {
    train_set(with(with(folder_options(dir / "faces"), "split", std::string("train")),
                   "verification_fraction", 0.1));
  } catch (const flatface::ConfigError& e) {
    what = e.what();
  }
  CATCH_CHECK(contains(what, "test.toml:3:1"));
  CATCH_CHECK(contains(what, "need at least 2 held out"));
}

CATCH_TEST_CASE("a corrupt image in the folder is an error naming the file") {
  ScratchDir dir("corrupt");
  write_colour_folder(dir / "faces", 2, 1);
  spit(dir / "faces/id01/0.png", {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0});
  auto set = train_set(folder_options(dir / "faces"), 4);
  std::string what = runtime_error_of([&] { set->get(1); });
  CATCH_CHECK(contains(what, dir / "faces/id01/0.png"));
  CATCH_CHECK(contains(what, "corrupt PNG"));
}

CATCH_TEST_CASE("data info describes the ORL folder") {
  ScratchDir dir("orl-info");
  CATCH_REQUIRE(
      flatface::testing::run_cli_to_file("data info " + shared_data("orl"), dir / "log") == 0);
  std::string log = flatface::testing::text_of(dir / "log");
  CATCH_CHECK(contains(log, "identities: 40 (s1 .. s9"));
  CATCH_CHECK(contains(log, "images:     400"));
  CATCH_CHECK(contains(log, "min 10, mean 10.0, max 10"));
  CATCH_CHECK(contains(log, "formats:    pgm grey 400"));
  CATCH_CHECK(contains(log, "sizes:      92x112 400"));
}

CATCH_TEST_CASE("data pack turns ORL into a RecordIO whose PNG payloads hold the PGM pixels") {
  ScratchDir dir("orl-pack");
  CATCH_REQUIRE(flatface::testing::run_cli_to_file(
                    "data pack " + shared_data("orl") + " " + dir / "out", dir / "log") == 0);
  CATCH_CHECK(contains(flatface::testing::text_of(dir / "log"), "pgm -> png 400"));
  CATCH_CHECK(flatface::testing::text_of(dir / "out/property") == "40,112,92");
  auto rec = flatface::InsightfaceRec::open(dir / "out");
  CATCH_REQUIRE(rec.size() == 400);
  CATCH_CHECK(rec.num_classes() == 40);
  auto listing = flatface::list_image_folder(shared_data("orl"));
  for (std::size_t i = 0; i < 400; i += 37) {
    auto r = rec.read(i);
    CATCH_CHECK(r.label == static_cast<std::int64_t>(i / 10));
    Image packed = flatface::decode_image(r.image_data(), r.image_size());
    CATCH_CHECK(packed.pixels == flatface::load_image_file(listing.images[i / 10][i % 10]).pixels);
  }
  // An independent reader (Python struct + PIL) sees the same labels and pixels.
  ScratchDir ref("orl-pack-ref");
  CATCH_REQUIRE(
      flatface::testing::reference_python("rec " + dir / "out" + " " + ref.str() + " 1 400") == 0);
  std::string labels = flatface::testing::text_of(ref / "labels.txt");
  CATCH_CHECK(contains(labels, "1 0\n2 0\n"));
  CATCH_CHECK(contains(labels, "\n400 39\n"));
  CATCH_CHECK(std::count(labels.begin(), labels.end(), '\n') == 400);
  CATCH_CHECK(slurp(ref / "1.rgb") == flatface::load_image_file(listing.images[0][0]).pixels);
  CATCH_CHECK(slurp(ref / "400.rgb") == flatface::load_image_file(listing.images[39][9]).pixels);
}
