// `flatface eval` and `flatface embed` on the checkpoint of a tiny run: the toy test plugins for
// data and backbone, the real plain head and step.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "catch_compat.hpp"
#include "cli_test_support.hpp"
#include "result_store.hpp"

namespace fs = std::filesystem;
using namespace flatface::testing;

namespace {

const std::string kToyPlugins = std::string(FLATFACE_TEST_PLUGIN_DIR) + "/good";

Result run_toy_cli(const std::string& args) {
  return shell("'" + std::string(FLATFACE_CLI) + "' --threads 1 --plugin-path '" + kToyPlugins +
               "' " + args);
}

// One toy run trained for one epoch, shared by the test cases: its folder and checkpoint.
struct TrainedRun {
  fs::path dir, checkpoint, results;
  TrainedRun() {
    dir = fs::temp_directory_path() / ("flatface-test-eval-cli-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "toy.toml") << R"([experiment]
name = "eval-cli"
seeds = [0]
device = "cpu"
output = ")" << (dir / "out").string()
                                    << R"("

[data]
train = { plugin = "test-toy-data", classes = 3, images = 12 }
eval = [{ name = "toy", plugin = "test-toy-data", pairs = 20 }]

[model]
backbone = { plugin = "test-toy-backbone", embedding = 4 }

[train]
epochs = 1
batch_size = 4

[[setup]]
name = "plain"
head = { plugin = "softmax" }
perturbation = { plugin = "none" }
)";
    Result r = run_toy_cli("run '" + (dir / "toy.toml").string() + "' --no-report");
    if (r.code != 0) throw std::runtime_error("training the toy run failed:\n" + r.out);
    for (const auto& f : fs::directory_iterator(dir / "out" / "checkpoints"))
      if (f.path().extension() == ".ckpt") checkpoint = f.path();
    for (const auto& f : fs::directory_iterator(dir / "out"))
      if (f.path().extension() == ".h5") results = f.path();
  }
  ~TrainedRun() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

const TrainedRun& trained() {
  static TrainedRun run;
  return run;
}

}  // namespace

CATCH_TEST_CASE("flatface eval prints the accuracy the run recorded for its verification set") {
  const auto& run = trained();
  CATCH_REQUIRE(!run.checkpoint.empty());
  Result r = run_toy_cli("eval --checkpoint '" + run.checkpoint.string() + "' toy --batch-size 7");
  CATCH_REQUIRE(r.code == 0);
  std::istringstream lines(r.out);
  std::string header, columns, row;
  std::getline(lines, header);
  std::getline(lines, columns);
  std::getline(lines, row);
  CATCH_CHECK(contains(header, "epoch 1, device cpu"));
  CATCH_CHECK(columns.rfind("benchmark", 0) == 0);
  CATCH_CHECK(contains(columns, "TAR@FAR=1e-3"));
  // the same weights, the same pairs: the end-of-epoch evaluation and this one agree
  auto record = flatface::read_run_record(run.results.string());
  const auto& m = record.epochs.back().benchmarks.at("toy");
  char expected[64];
  std::snprintf(expected, sizeof expected, "%.2f ± %.2f", 100 * m.accuracy, 100 * m.accuracy_std);
  CATCH_CHECK(row.rfind("toy ", 0) == 0);
  CATCH_CHECK(contains(row, " 20 "));
  CATCH_CHECK(contains(row, expected));
}

CATCH_TEST_CASE("flatface eval reads a .bin file through the dataset plugin for its extension") {
  const auto& run = trained();
  const std::string bin = std::string(FLATFACE_SHARED_DIR) + "/data/kz25/test600.bin";
  Result r = run_toy_cli("eval --checkpoint '" + run.checkpoint.string() + "' '" + bin + "' toy");
  CATCH_REQUIRE(r.code == 0);
  CATCH_CHECK(contains(r.out, "\ntest600 "));
  CATCH_CHECK(contains(r.out, " 600 "));
  CATCH_CHECK(contains(r.out, "\ntoy "));
}

CATCH_TEST_CASE(
    "flatface eval names the sets it knows when SET is neither a file nor one of them") {
  const auto& run = trained();
  Result r = run_toy_cli("eval --checkpoint '" + run.checkpoint.string() + "' LFW");
  CATCH_CHECK(r.code == 2);
  CATCH_CHECK(contains(r.out,
                       "'LFW' is neither an existing file (.bin) nor a verification set of "
                       "the checkpoint's experiment (toy)"));
  CATCH_CHECK(!contains(r.out, "benchmark"));  // nothing evaluated before the error
}

CATCH_TEST_CASE("flatface embed writes [2N,D] float32 embeddings and uint8 issame") {
  const auto& run = trained();
  const auto out = (run.dir / "toy-embeddings.h5").string();
  Result r =
      run_toy_cli("embed --checkpoint '" + run.checkpoint.string() + "' toy --out '" + out + "'");
  CATCH_REQUIRE(r.code == 0);
  Result py =
      shell(std::string(FLATFACE_PYTHON) + " -c \"import h5py, numpy as np; f = h5py.File('" + out +
            "', 'r'); e = f['embeddings'][:]; s = f['issame'][:]; "
            "print(e.shape, e.dtype, s.dtype, ''.join(map(str, s)), "
            "bool(np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-6)), f.attrs['set'])\"");
  // toy pairs alternate same / different; D = the toy backbone's embedding = 4
  CATCH_CHECK(py.out == "(40, 4) float32 uint8 10101010101010101010 True toy\n");
}
