// The plugin registry: what it loads, and what it says when a library is not a usable plugin.
#include <string>

#include "catch_compat.hpp"
#include "plugin_host/factory.hpp"
#include "flatface/version.hpp"
#include "plugin_host/registry.hpp"
#include "test_support.hpp"

using flatface::ConfigError;
using flatface::PluginKind;
using flatface::Registry;
using flatface::testing::config_error;
using flatface::testing::contains;

namespace {

const std::string dir = FLATFACE_TEST_PLUGIN_DIR;

}  // namespace

CATCH_TEST_CASE("a plugin library's entries are indexed by kind and name") {
  Registry reg;
  reg.scan_folder(dir + "/good");
  CATCH_REQUIRE(reg.all().size() == 4);
  for (auto kind :
       {PluginKind::backbone, PluginKind::head, PluginKind::perturbation, PluginKind::dataset}) {
    CATCH_CHECK(reg.entries(kind).size() == 1);
  }
  const auto& head = reg.get(PluginKind::head, "test-toy-head");
  CATCH_CHECK(head.entry.head != nullptr);
  CATCH_CHECK(contains(head.library, "/good/toy_kit.so"));
  CATCH_CHECK(reg.find(PluginKind::backbone, "test-toy-head") == nullptr);  // kinds are separate
  CATCH_CHECK(reg.folders_scanned() == std::vector<std::string>{dir + "/good"});
}

CATCH_TEST_CASE("loading the same library twice is a no-op") {
  Registry reg;
  reg.load_library(dir + "/good/toy_kit.so");
  reg.load_library(dir + "/good/../good/toy_kit.so");
  CATCH_CHECK(reg.all().size() == 4);
}

CATCH_TEST_CASE("an unknown plugin name lists the available names of that kind") {
  Registry reg;
  reg.scan_folder(dir + "/good");
  std::string msg = config_error([&] { reg.get(PluginKind::perturbation, "sam"); });
  CATCH_CHECK(msg == "unknown perturbation plugin 'sam' (available: test-toy)");
}

CATCH_TEST_CASE("an unknown plugin with nothing loaded points at the plugin path") {
  Registry reg;
  std::string msg = config_error([&] { reg.get(PluginKind::head, "arcface"); });
  CATCH_CHECK(contains(msg, "unknown head plugin 'arcface'"));
  CATCH_CHECK(contains(msg, "check the plugin path"));
}

CATCH_TEST_CASE(
    "a plugin built for another ABI version is rejected naming the file and both versions") {
  Registry reg;
  std::string file = dir + "/abi/toy_abi999.so";
  std::string msg = config_error([&] { reg.scan_folder(dir + "/abi"); });
  CATCH_CHECK(contains(msg, file + ": plugin ABI version 999"));
  CATCH_CHECK(contains(msg, "the host's " + std::to_string(FLATFACE_ABI_VERSION)));
  CATCH_CHECK(reg.all().empty());
}

CATCH_TEST_CASE("a shared library without a manifest is not a flatface plugin") {
  Registry reg;
  std::string file = dir + "/nomanifest/no_manifest.so";
  std::string msg = config_error([&] { reg.load_library(file); });
  CATCH_CHECK(contains(msg, file + ": not a flatface plugin"));
  CATCH_CHECK(contains(msg, "FLATFACE_PLUGIN"));
}

CATCH_TEST_CASE("a library the loader cannot load is reported with the loader's own message") {
  CATCH_SECTION("a missing dependency") {
    Registry reg;
    std::string file = dir + "/missingdep/missing_dependency.so";
    std::string msg = config_error([&] { reg.load_library(file); });
    CATCH_CHECK(contains(msg, file + ": cannot load plugin library: "));
    // dlerror(): "libflatface_test_gone.so: cannot open shared object file: No such file ..."
    CATCH_CHECK(contains(msg, "libflatface_test_gone.so: cannot open shared object file"));
  }
  CATCH_SECTION("a text file named .so") {
    Registry reg;
    std::string file = dir + "/notelf/garbage.so";
    std::string msg = config_error([&] { reg.scan_folder(dir + "/notelf"); });
    CATCH_CHECK(contains(msg, file + ": cannot load plugin library: "));
    CATCH_CHECK(contains(msg, "garbage.so: invalid ELF header"));
  }
}

CATCH_TEST_CASE("two libraries providing the same kind and name are both named") {
  Registry reg;
  std::string msg = config_error([&] { reg.scan_folder(dir + "/dup"); });
  CATCH_CHECK(contains(msg, "duplicate perturbation plugin 'test-dup'"));
  CATCH_CHECK(contains(msg, dir + "/dup/dup_a.so"));
  CATCH_CHECK(contains(msg, dir + "/dup/dup_b.so"));
}

CATCH_TEST_CASE("a missing plugin folder is skipped") {
  Registry reg;
  reg.scan_folder(dir + "/no-such-folder");
  CATCH_CHECK(reg.folders_scanned().empty());
}

CATCH_TEST_CASE("FLATFACE_PLUGIN_PATH folders are searched after the host's own folder") {
  ::setenv("FLATFACE_PLUGIN_PATH", (dir + "/good::" + dir + "/no-such-folder").c_str(), 1);
  auto folders = flatface::default_plugin_folders();
  ::unsetenv("FLATFACE_PLUGIN_PATH");
  // The test links the build tree's libflatface, so its own folder is the build's plugins/.
  CATCH_REQUIRE(folders.size() == 3);
  CATCH_CHECK(folders[0] == std::string(FLATFACE_BINARY_DIR) + "/plugins");
  CATCH_CHECK(folders[1] == dir + "/good");
  CATCH_CHECK(folders[2] == dir + "/no-such-folder");
}

CATCH_TEST_CASE("a plugin factory gets its options and unread keys are typos") {
  Registry reg;
  reg.scan_folder(dir + "/good");
  flatface::Options options("perturbation 'test-toy'", {"x.toml", 7, 16});
  options.set("plugin", {std::string("test-toy"), {"x.toml", 7, 18}});
  options.set("rho", {0.1, {"x.toml", 7, 38}});
  CATCH_CHECK(flatface::make_perturbation(reg, "test-toy", options)->two_pass() == false);

  options.set("rhoo", {0.1, {"x.toml", 7, 49}});
  std::string msg = config_error([&] { flatface::make_perturbation(reg, "test-toy", options); });
  CATCH_CHECK(msg ==
              "x.toml:7:49: unknown key 'rhoo' for perturbation 'test-toy' "
              "(known: bn_second_pass, epsilon, plugin, rho)");
}

CATCH_TEST_CASE("a plugin factory's bad-data failure stays a runtime error") {
  Registry reg;
  reg.scan_folder(dir + "/good");
  flatface::PluginRef ref{"test-toy-data", flatface::Options("training data", {"x.toml", 3, 9})};
  ref.options.set("path", {std::string("/no/such/file.rec"), {"x.toml", 3, 40}});
  CATCH_CHECK_THROWS_AS(flatface::make_train_set(reg, ref, 8, 0), flatface::RuntimeError);
  try {
    flatface::make_train_set(reg, ref, 8, 0);
  } catch (const flatface::RuntimeError& e) {
    CATCH_CHECK(std::string(e.what()) ==
                "dataset 'test-toy-data': /no/such/file.rec: cannot open the toy data file");
  }
}
