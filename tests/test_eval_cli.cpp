// `flatface eval` and `flatface embed` on the checkpoint of a tiny run (the toy test plugins for
// data and backbone, the real plain head and step), and on insightface-layout weights that PyTorch
// wrote: with --weights, and as the [model] init of a run.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "catch_compat.hpp"
#include "cli_test_support.hpp"
#include "results/result_store.hpp"
#include "formats/state_dict.hpp"
#include "evaluation/verification.hpp"
#include "tiny_grid.hpp"

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
    TinyGrid g = tiny_toy_grid();
    g.name = "eval-cli";
    g.device = "cpu";
    g.output = (dir / "out").string();
    g.train = R"({ plugin = "test-toy-data", classes = 3, images = 12 })";
    g.batch_size = 4;
    g.setups = {{"plain", R"({ plugin = "softmax" })"}};
    std::ofstream(dir / "toy.toml") << tiny_grid(g);
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
                       "'LFW' is neither an existing file or folder nor a verification set of "
                       "the checkpoint's experiment (toy)"));
  CATCH_CHECK(!contains(r.out, "benchmark"));  // nothing evaluated before the error
}

CATCH_TEST_CASE(
    "flatface embed writes [2N,D] float32 embeddings, uint8 issame and the [2N] magnitudes") {
  const auto& run = trained();
  const auto out = (run.dir / "toy-embeddings.h5").string();
  Result r =
      run_toy_cli("embed --checkpoint '" + run.checkpoint.string() + "' toy --out '" + out + "'");
  CATCH_REQUIRE(r.code == 0);
  Result py =
      shell(std::string(FLATFACE_PYTHON) + " -c \"import h5py, numpy as np; f = h5py.File('" + out +
            "', 'r'); e = f['embeddings'][:]; s = f['issame'][:]; "
            "m = f['magnitude'][:]; "
            "print(e.shape, e.dtype, s.dtype, ''.join(map(str, s)), "
            "bool(np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-6)), f.attrs['set'], "
            "m.shape, m.dtype, bool((m > 0).all()))\"");
  // toy pairs alternate same / different; D = the toy backbone's embedding = 4; the magnitude
  // ‖f(x)‖ of each image before normalisation (MagFace's quality score)
  CATCH_CHECK(py.out ==
              "(40, 4) float32 uint8 10101010101010101010 True toy (40,) float32 True\n");
}

namespace {

// insightface-layout weights from an independent PyTorch IResNet-18 (tests/python/
// iresnet_reference.py), a .bin of 20 pairs of random 32x32 images, and the embeddings PyTorch
// computes for them.
const std::string kBackbone =
    "'{ plugin = \"iresnet\", depth = 18, width = 16, input = 32, embedding = 64 }'";

std::string reference_script() {
  return std::string(FLATFACE_PYTHON) + " '" + FLATFACE_TEST_SOURCE_DIR +
         "/python/iresnet_reference.py'";
}

struct PythonWeights {
  TempDir dir{"eval-weights"};
  std::string weights = dir / "weights/backbone.pth";
  std::string bin = dir / "pairs.bin";
  std::string expected = dir / "expected.pt";

  explicit PythonWeights(const std::string& format) {
    fs::create_directories(dir.path / "weights");
    Result r = shell(reference_script() +
                     " pairs --depth 18 --width 16 --input 32 --embedding 64 --format " + format +
                     " --weights '" + weights + "' --bin '" + bin + "' --io '" + expected + "'");
    if (r.code != 0) throw std::runtime_error("iresnet_reference.py pairs failed:\n" + r.out);
  }
  // Exit status 0 when the embeddings of a `flatface embed` file equal PyTorch's to 1e-5.
  Result compare(const std::string& h5) const {
    return shell(reference_script() + " compare --io '" + expected + "' --h5 '" + h5 + "'");
  }
};

const std::string kInitExperiment = R"([experiment]
name = "init"
seeds = [0]
device = "cpu"
output = "out"

[data]
train = { plugin = "synthetic", identities = 4, images_per_identity = 4 }

[model]
backbone = { plugin = "iresnet", depth = 18, width = 16, input = 32, embedding = 64 }
init = "weights/backbone.pth"

[train]
epochs = 1
batch_size = 8

[[setup]]
name = "plain"
head = { plugin = "softmax" }
)";

fs::path only_file(const fs::path& dir, const std::string& extension) {
  fs::path found;
  for (const auto& f : fs::directory_iterator(dir))
    if (f.path().extension() == extension) found = f.path();
  return found;
}

}  // namespace

CATCH_TEST_CASE(
    "flatface embed --weights gives PyTorch's embeddings, from either torch.save format") {
  for (const std::string format : {"zip", "legacy"}) {
    CATCH_CAPTURE(format);
    PythonWeights py(format);
    const std::string out = py.dir / "embeddings.h5";
    Result r = run_toy_cli("embed --weights '" + py.weights + "' --backbone " + kBackbone + " '" +
                           py.bin + "' --out '" + out + "'");
    CATCH_CAPTURE(r.out);
    CATCH_REQUIRE(r.code == 0);
    Result same = py.compare(out);
    CATCH_CAPTURE(same.out);
    CATCH_CHECK(same.code == 0);
  }
}

CATCH_TEST_CASE(
    "flatface eval --weights prints the accuracy of PyTorch's embeddings of the pairs") {
  PythonWeights py("legacy");
  Result r = run_toy_cli("eval --weights '" + py.weights + "' --backbone " + kBackbone + " '" +
                         py.bin + "'");
  CATCH_CAPTURE(r.out);
  CATCH_REQUIRE(r.code == 0);
  const flatface::TensorDict expected = flatface::load_tensor_dict(py.expected);
  const at::Tensor flags = expected.at("issame");
  std::vector<bool> issame;
  for (std::int64_t i = 0; i < flags.numel(); ++i)
    issame.push_back(flags[i].item<std::int64_t>() != 0);
  const auto m = flatface::evaluate_pairs(expected.at("embeddings").to(at::kDouble), issame);
  char accuracy[64];
  std::snprintf(accuracy, sizeof accuracy, "%.2f ± %.2f", 100 * m.accuracy, 100 * m.accuracy_std);
  CATCH_CHECK(contains(r.out, "# " + py.weights + ": backbone iresnet{"));
  CATCH_CHECK(contains(r.out, "\npairs "));  // the set is named after its file
  CATCH_CHECK(contains(r.out, " 20 "));
  CATCH_CHECK(contains(r.out, accuracy));
}

CATCH_TEST_CASE("[model] init starts a run from the weights; a resumed run keeps its checkpoint") {
  for (const std::string format : {"zip", "legacy"}) {
    CATCH_CAPTURE(format);
    PythonWeights py(format);
    py.dir.write("init.toml", kInitExperiment);
    // The init path is relative to the working directory, as the data paths are.
    auto run_in_dir = [&](const std::string& args) {
      return shell("cd '" + py.dir.str() + "' && '" + FLATFACE_CLI +
                   "' --threads 1 run init.toml " + args + " --no-report");
    };
    Result r = run_in_dir("--stop-after-steps 0");
    CATCH_CAPTURE(r.out);
    CATCH_REQUIRE(r.code == 130);  // stopped before the first step, as Ctrl-C would
    const fs::path ckpt = only_file(py.dir.path / "out" / "checkpoints", ".ckpt");
    CATCH_REQUIRE(!ckpt.empty());

    // The run's backbone is the file's, tensor for tensor, and embeds as PyTorch does.
    const std::string exported = py.dir / "exported.pt";
    const Result exported_note = run_toy_cli("export '" + ckpt.string() + "' --out '" + exported + "'");
    CATCH_REQUIRE(exported_note.code == 0);
    // It says what the network expects: insightface's input unless the backbone table says more.
    CATCH_CHECK(contains(exported_note.out, " images, RGB, (x/255 - 0.5) / 0.5\n"));
    const flatface::TensorDict file = flatface::load_tensor_dict(py.weights);
    const flatface::TensorDict run = flatface::load_tensor_dict(exported);
    CATCH_REQUIRE(run.size() == file.size());
    for (const auto& e : file) {
      CATCH_CAPTURE(e.key());
      CATCH_CHECK(run.at(e.key()).equal(e.value()));
    }
    const std::string out = py.dir / "embeddings.h5";
    CATCH_REQUIRE(run_toy_cli("embed --checkpoint '" + ckpt.string() + "' '" + py.bin +
                              "' --out '" + out + "'")
                      .code == 0);
    Result same = py.compare(out);
    CATCH_CAPTURE(same.out);
    CATCH_CHECK(same.code == 0);

    // The weights file is no longer read once the run has a checkpoint ...
    std::ofstream(py.weights, std::ios::trunc) << "not weights";
    r = run_in_dir("");
    CATCH_CHECK(r.code == 0);
    // ... but a fresh run needs it, and names it.
    r = run_in_dir("--set experiment.output=fresh");
    CATCH_CHECK(r.code == 1);
    CATCH_CHECK(contains(r.out, "weights/backbone.pth: not a torch.save file"));
  }
}

CATCH_TEST_CASE("Weights of another depth are a config error naming the file and the first keys") {
  PythonWeights py("zip");
  // IResNet-34 has 8 residual blocks more than IResNet-18 (stages 3,4,6,3 against 2,2,2,2), each
  // of 18 tensors: 3 BN x 5, 2 convolutions, 1 PReLU. They are missing from the file.
  const std::string missing =
      ": weights do not fit the model; missing keys: layer1.2.bn1.weight, layer1.2.bn1.bias, "
      "layer1.2.bn1.running_mean, layer1.2.bn1.running_var, layer1.2.bn1.num_batches_tracked … "
      "and 139 more";
  Result r = run_toy_cli("eval --weights '" + py.weights +
                         "' --backbone '{ plugin = \"iresnet\", depth = 34, width = 16, input = "
                         "32, embedding = 64 }' '" +
                         py.bin + "'");
  CATCH_CHECK(r.code == 2);
  CATCH_CHECK(contains(r.out, py.weights + missing));
  CATCH_CHECK(!contains(r.out, "unexpected keys"));
  CATCH_CHECK(!contains(r.out, "benchmark"));

  // The same through [model] init, before anything is trained.
  py.dir.write("init.toml", kInitExperiment);
  r = shell("cd '" + py.dir.str() + "' && '" + FLATFACE_CLI +
            "' --threads 1 run init.toml --set model.backbone.depth=34 --no-report");
  CATCH_CHECK(r.code == 2);
  CATCH_CHECK(contains(r.out, "weights/backbone.pth" + missing));
  CATCH_CHECK(only_file(py.dir.path / "out", ".h5").empty());  // no result file was started
  // And `flatface validate` finds it without training.
  r = shell("cd '" + py.dir.str() + "' && '" + FLATFACE_CLI +
            "' validate init.toml --set model.backbone.depth=34");
  CATCH_CHECK(r.code == 2);
  CATCH_CHECK(contains(r.out, "weights/backbone.pth" + missing));
}

CATCH_TEST_CASE("flatface eval takes a checkpoint, or weights with their backbone") {
  const auto& run = trained();
  PythonWeights py("zip");
  const std::string weights = " --weights '" + py.weights + "' --backbone " + kBackbone;
  Result both = run_toy_cli("eval --checkpoint '" + run.checkpoint.string() + "'" + weights + " '" +
                            py.bin + "'");
  CATCH_CHECK(both.code == 2);
  CATCH_CHECK(contains(both.out, "excludes"));
  Result bare = run_toy_cli("eval --weights '" + py.weights + "' '" + py.bin + "'");
  CATCH_CHECK(bare.code == 2);
  CATCH_CHECK(contains(bare.out, "--weights requires --backbone"));
  Result neither = run_toy_cli("eval '" + py.bin + "'");
  CATCH_CHECK(neither.code == 2);
  CATCH_CHECK(contains(neither.out, "--checkpoint"));
  Result named = run_toy_cli("eval" + weights + " toy");
  CATCH_CHECK(named.code == 2);
  CATCH_CHECK(contains(named.out,
                       "'toy' is not an existing file or folder; with --weights, "
                       "verification sets are given as paths a dataset plugin reads"));
}
