// The `flatface` executable: exit codes (0 ok, 2 usage or config error, 1 runtime failure) and
// what it prints. Runs the built binary with the toy test plugins.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "catch_compat.hpp"
#include "cli_test_support.hpp"
#include "flatface/torch_compat.hpp"
#include "flatface/version.hpp"
#include "tiny_grid.hpp"

namespace fs = std::filesystem;
using namespace flatface::testing;

namespace {

const std::string toy_plugins = std::string(FLATFACE_TEST_PLUGIN_DIR) + "/good";

// 3 seeds x (plain + toy-rho at 3 values) = 12 runs on the toy plugins.
std::string toy_grid() {
  TinyGrid g = tiny_toy_grid();
  g.name = "cli";
  g.seeds = {0, 1, 2};
  g.eval = {R"({ name = "toy", plugin = "test-toy-data", pairs = 2 })"};
  g.batch_size = 2;
  g.setups = {{"plain", R"({ plugin = "test-toy-head", s = 8.0 })", R"({ plugin = "test-toy" })"},
              {"toy-rho", R"({ plugin = "test-toy-head" })",
               R"({ plugin = "test-toy", rho = [0.1, 0.2, 0.3] })"}};
  return tiny_grid(g);
}

const std::string kToyGrid = toy_grid();

int count_lines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace

CATCH_TEST_CASE("flatface --version prints the flatface, ABI and libtorch versions") {
  auto r = run_cli("--version");
  CATCH_CHECK(r.code == 0);
  CATCH_CHECK(r.out.rfind(std::string("flatface ") + FLATFACE_VERSION_STRING + " (plugin ABI " +
                              std::to_string(FLATFACE_ABI_VERSION) + ")\n",
                          0) == 0);
  CATCH_CHECK(contains(r.out, "libtorch " + flatface::torch_version_string() + "\n"));
}

CATCH_TEST_CASE("flatface without a subcommand or with an unknown one is a usage error") {
  CATCH_CHECK(run_cli("").code == 2);
  auto r = run_cli("frobnicate");
  CATCH_CHECK(r.code == 2);
  CATCH_CHECK(contains(r.out, "frobnicate"));
}

CATCH_TEST_CASE("flatface plugins --kind lists only plugins of that kind") {
  auto r = run_cli("--plugin-path '" + toy_plugins + "' plugins --kind head");
  CATCH_CHECK(r.code == 0);
  std::istringstream lines(r.out);
  std::string line;
  std::getline(lines, line);
  CATCH_CHECK(line.rfind("kind", 0) == 0);  // the header
  int toy = 0, rows = 0;
  while (std::getline(lines, line)) {
    ++rows;
    CATCH_CHECK(line.rfind("head ", 0) == 0);
    if (contains(line, "test-toy-head")) {
      ++toy;
      CATCH_CHECK(contains(line, "/good/toy_kit.so"));
    }
  }
  CATCH_CHECK(toy == 1);
  CATCH_CHECK(rows >= 1);
}

CATCH_TEST_CASE("flatface plugins finds FLATFACE_PLUGIN_PATH and lists every kind") {
  auto r = run_cli("plugins", "FLATFACE_PLUGIN_PATH='" + toy_plugins + "'");
  CATCH_CHECK(r.code == 0);
  for (const char* name : {"test-toy-backbone", "test-toy-head", "test-toy-data", "test-toy "})
    CATCH_CHECK(contains(r.out, name));
}

CATCH_TEST_CASE("flatface plugins with a bad --kind or a broken plugin folder exits 2") {
  auto r = run_cli("plugins --kind loss");
  CATCH_CHECK(r.code == 2);
  CATCH_CHECK(contains(r.out, "--kind"));
  std::string abi = std::string(FLATFACE_TEST_PLUGIN_DIR) + "/abi";
  r = run_cli("plugins", "FLATFACE_PLUGIN_PATH='" + abi + "'");
  CATCH_CHECK(r.code == 2);
  CATCH_CHECK(contains(r.out, "error: " + abi + "/toy_abi999.so: plugin ABI version 999"));
}

CATCH_TEST_CASE("flatface plan lists every run of the grid") {
  TempDir tmp("cli");
  auto file = tmp.write("grid.toml", kToyGrid);
  auto r = run_cli("plan '" + file + "'");
  CATCH_CHECK(r.code == 0);
  // 3 seeds x (1 + 3 rho values) = 12 runs, one line each after the title.
  CATCH_CHECK(r.out.rfind("# cli: 12 runs -> results/cli\n", 0) == 0);
  CATCH_CHECK(count_lines(r.out) == 1 + 12);
  CATCH_CHECK(contains(r.out, "  toy-rho  seed=2  rho=0.3\n"));
  CATCH_CHECK(contains(r.out, "  plain  seed=0  rho=-\n"));

  r = run_cli("plan '" + file +
              "' --set 'experiment.seeds=[7]' --set setup.1.perturbation.rho=0.2");
  CATCH_CHECK(r.code == 0);
  CATCH_CHECK(r.out.rfind("# cli: 2 runs", 0) == 0);
  CATCH_CHECK(contains(r.out, "  toy-rho  seed=7  rho=0.2\n"));
}

CATCH_TEST_CASE("flatface plan of a missing or malformed file exits 2 with the position") {
  TempDir tmp("cli");
  auto r = run_cli("plan '" + (tmp.path / "missing.toml").string() + "'");
  CATCH_CHECK(r.code == 2);
  CATCH_CHECK(contains(r.out, "missing.toml"));
  auto file = tmp.write("bad.toml", with(kToyGrid, "epochs = 1", "epochs = 1x"));
  r = run_cli("plan '" + file + "'");
  CATCH_CHECK(r.code == 2);
  CATCH_CHECK(contains(r.out, "error: " + file + ":13:"));
}

CATCH_TEST_CASE("flatface validate constructs every run's objects") {
  TempDir tmp("cli");
  auto file = tmp.write("grid.toml", kToyGrid);
  auto r = run_cli("--plugin-path '" + toy_plugins + "' validate '" + file + "'");
  CATCH_CHECK(r.code == 0);
  CATCH_CHECK(r.out == file + ": ok (12 runs, 2 setups, 3 seeds, 1 verification sets)\n");
}

CATCH_TEST_CASE("flatface validate takes global options after the subcommand too") {
  TempDir tmp("cli");
  auto file = tmp.write("grid.toml", kToyGrid);
  auto r = run_cli("validate '" + file + "' --plugin-path '" + toy_plugins + "'");
  CATCH_CHECK(r.code == 0);
}

CATCH_TEST_CASE("flatface validate of a file with a misspelled option exits 2 naming it") {
  TempDir tmp("cli");
  auto file = tmp.write("typo.toml", with(kToyGrid, "rho = [0.1, 0.2, 0.3]", "rhoo = 0.1"));
  auto r = run_cli("--plugin-path '" + toy_plugins + "' validate '" + file + "'");
  CATCH_CHECK(r.code == 2);
  // Line 24, column 39: `perturbation = { plugin = "test-toy", rhoo = 0.1 }`.
  CATCH_CHECK(r.out == "error: " + file +
                           ":24:39: unknown key 'rhoo' for perturbation 'test-toy' (known: "
                           "bn_second_pass, epsilon, plugin, rho)\n");
}

CATCH_TEST_CASE("flatface validate of an unknown plugin exits 2 listing the available ones") {
  TempDir tmp("cli");
  auto file = tmp.write("unknown.toml", with(kToyGrid, "test-toy-backbone", "no-such-net"));
  auto r = run_cli("--plugin-path '" + toy_plugins + "' validate '" + file + "'");
  CATCH_CHECK(r.code == 2);
  CATCH_CHECK(contains(r.out, "error: unknown backbone plugin 'no-such-net' (available: "));
  CATCH_CHECK(contains(r.out, "test-toy-backbone"));
}

CATCH_TEST_CASE("flatface validate with a missing data file is a runtime failure, exit 1") {
  TempDir tmp("cli");
  auto file = tmp.write("nodata.toml", with(kToyGrid, "classes = 3", "path = \"/no/such.rec\""));
  auto r = run_cli("--plugin-path '" + toy_plugins + "' validate '" + file + "'");
  CATCH_CHECK(r.code == 1);
  CATCH_CHECK(r.out ==
              "error: dataset 'test-toy-data': /no/such.rec: cannot open the toy data file\n");
}
