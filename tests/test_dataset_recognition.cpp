// Which dataset plugin reads a path given on the command line: the plugin that recognises it, by
// extension (insightface-bin), by what a folder holds (insightface-rec, image-folder) or by the
// first bytes (the toy test plugin), and the errors when no plugin or two plugins recognise a path.
#include <fstream>
#include <string>

#include "catch_compat.hpp"
#include "data/dataset_recognition.hpp"
#include "data_test_support.hpp"
#include "plugin_host/factory.hpp"

using flatface::DataRole;
using flatface::testing::config_error;
using flatface::testing::contains;
using flatface::testing::ScratchDir;
using flatface::testing::shared_data;

namespace {

// The build's plugins and the toy test plugins (whose dataset recognises files starting TOYPAIRS).
const flatface::Registry& registry() {
  static std::unique_ptr<flatface::Registry> reg =
      flatface::open_registry({std::string(FLATFACE_BINARY_DIR) + "/test-plugins/good"});
  return *reg;
}

std::string recognised_by(const std::string& path, DataRole role, const std::string& plugin = "") {
  return flatface::recognised_ref(registry(), path, role, plugin).plugin;
}

std::string config_error_of(const std::string& path, DataRole role) {
  return config_error([&] { recognised_ref(registry(), path, role); });
}

}  // namespace

CATCH_TEST_CASE("the built-in formats are recognised by the plugin that reads them, in its roles") {
  CATCH_CHECK(recognised_by(shared_data("kz25"), DataRole::train) == "insightface-rec");
  CATCH_CHECK(recognised_by(shared_data("kz25/train.rec"), DataRole::train) == "insightface-rec");
  CATCH_CHECK(recognised_by(shared_data("kz25/test600.bin"), DataRole::verification) ==
              "insightface-bin");
  CATCH_CHECK(recognised_by(shared_data("orl"), DataRole::train) == "image-folder");
  CATCH_CHECK(recognised_by(shared_data("orl"), DataRole::verification) == "image-folder");
  // A RecordIO folder is not a verification set, and a .bin is not a training set.
  CATCH_CHECK(contains(config_error_of(shared_data("kz25"), DataRole::verification),
                       "no dataset plugin recognises it as a verification set"));
  CATCH_CHECK(contains(config_error_of(shared_data("kz25/test600.bin"), DataRole::train),
                       "no dataset plugin recognises it as a training set"));
}

CATCH_TEST_CASE("the recognised reference holds the absolute path and opens the set") {
  auto ref =
      flatface::recognised_ref(registry(), shared_data("kz25/test600.bin"), DataRole::verification);
  CATCH_CHECK(ref.options.get_string("path", "") == shared_data("kz25/test600.bin"));
  auto set = flatface::make_verification_set(registry(), ref, 112, 0);
  CATCH_CHECK(set->num_pairs() == 600);
}

CATCH_TEST_CASE("a path no plugin recognises is an error listing every plugin and what it reads") {
  ScratchDir dir("recognition-none");
  const std::string file = (dir.path / "notes.txt").string();
  std::ofstream(file) << "hello";
  const std::string what = config_error_of(file, DataRole::verification);
  CATCH_CHECK(
      contains(what, "'" + file + "': no dataset plugin recognises it as a verification set"));
  CATCH_CHECK(contains(what, "insightface-bin: *.bin files"));
  CATCH_CHECK(contains(what, "test-toy-data: files starting with TOYPAIRS"));
  CATCH_CHECK(contains(what, "lfw-pairs: no paths"));
}

CATCH_TEST_CASE("two plugins recognising one path is an error naming both; --dataset chooses") {
  ScratchDir dir("recognition-two");
  const std::string file = (dir.path / "x.bin").string();  // .bin by name, TOYPAIRS by content
  std::ofstream(file) << "TOYPAIRS";
  const std::string what = config_error_of(file, DataRole::verification);
  CATCH_CHECK(
      contains(what, "dataset plugins 'insightface-bin' and 'test-toy-data' both recognise it"));
  CATCH_CHECK(contains(what, "--dataset NAME"));
  CATCH_CHECK(recognised_by(file, DataRole::verification, "test-toy-data") == "test-toy-data");
  // Without the .bin name only recognition by content is left.
  const std::string toy = (dir.path / "x.pairs").string();
  std::ofstream(toy) << "TOYPAIRS";
  CATCH_CHECK(recognised_by(toy, DataRole::verification) == "test-toy-data");
}
