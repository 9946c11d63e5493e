// State dicts: names, strict loading, and files that Python's torch.load / torch.save share with
// us. tests/python/iresnet_reference.py is a second IResNet, written independently in PyTorch.
#include <ATen/ops/allclose.h>
#include <caffe2/serialize/inline_container.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/utils.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "backbone_test_support.hpp"
#include "catch_compat.hpp"
#include "data_test_support.hpp"
#include "formats/ordered_dict_pickle.hpp"
#include "formats/state_dict.hpp"
#include "formats/torch_file.hpp"

namespace fs = std::filesystem;
using flatface::TensorDict;
using flatface::testing::TempDir;

namespace {

int run_python(const std::string& code_or_args) {
  const std::string command = std::string(FLATFACE_PYTHON) + " " + code_or_args;
  return std::system(command.c_str());
}

std::string reference_script() {
  return std::string(FLATFACE_TEST_SOURCE_DIR) + "/python/iresnet_reference.py";
}

std::vector<std::string> keys_of(const TensorDict& d) {
  std::vector<std::string> keys;
  for (const auto& e : d) keys.push_back(e.key());
  return keys;
}

// Moves every BN statistic, BN affine term and PReLU slope away from its initial value, so that a
// forward pass depends on every named tensor landing in the right place.
void randomise_state(torch::nn::Module& net) {
  torch::NoGradGuard no_grad;
  for (const auto& e : flatface::state_dict(net)) {
    auto t = e.value();
    const auto& k = e.key();
    auto ends_with = [&](const std::string& s) {
      return k.size() >= s.size() && k.compare(k.size() - s.size(), s.size(), s) == 0;
    };
    if (ends_with("running_var")) {
      t.uniform_(0.5, 1.5);
    } else if (ends_with("running_mean") || (ends_with("bias") && t.dim() == 1)) {
      t.uniform_(-0.2, 0.2);
    } else if (ends_with("weight") && t.dim() == 1 && k != "features.weight") {
      t.uniform_(0.5, 1.5);
    }
  }
}

}  // namespace

CATCH_TEST_CASE("state_dict lists parameters and buffers under dotted names, sharing storage") {
  torch::nn::Sequential net(torch::nn::Linear(3, 2), torch::nn::BatchNorm1d(2));
  const TensorDict d = flatface::state_dict(*net);
  CATCH_CHECK(keys_of(d) == std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias",
                                                     "1.running_mean", "1.running_var",
                                                     "1.num_batches_tracked"});
  d.at("1.running_mean").fill_(7.0);
  CATCH_CHECK(net[1]->as<torch::nn::BatchNorm1d>()->running_mean.eq(7.0).all().item<bool>());
}

CATCH_TEST_CASE("save_tensor_dict and load_tensor_dict round-trip names, dtypes and values") {
  TempDir dir("state-dict");
  TensorDict d;
  d.insert("a.weight", at::arange(6, at::kFloat).reshape({2, 3}));
  d.insert("a.count", at::tensor(std::vector<std::int64_t>{5}));
  d.insert("b", at::randn({4}, at::kDouble));
  flatface::save_tensor_dict(dir / "w.pt", d);
  const TensorDict back = flatface::load_tensor_dict(dir / "w.pt");
  CATCH_CHECK(keys_of(back) == keys_of(d));
  for (const auto& e : d) {
    CATCH_CAPTURE(e.key());
    CATCH_CHECK(back.at(e.key()).scalar_type() == e.value().scalar_type());
    CATCH_CHECK(back.at(e.key()).equal(e.value()));
  }
  // Atomic write: nothing but the file itself is left in the folder.
  CATCH_CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
}

CATCH_TEST_CASE(
    "Python's torch.load reads what save_tensor_dict writes, also with weights_only=True") {
  TempDir dir("state-dict");
  TensorDict d;
  d.insert("w", at::arange(6, at::kFloat).reshape({2, 3}) / 2);
  d.insert("n", at::tensor(std::vector<std::int64_t>{7}));
  flatface::save_tensor_dict(dir / "w.pt", d);
  const std::string check =
      "import sys, torch; d = torch.load(sys.argv[1], weights_only=True); "
      "ok = list(d) == ['w', 'n'] and d['w'].dtype == torch.float32 "
      "and d['w'].tolist() == [[0, 0.5, 1], [1.5, 2, 2.5]] "
      "and d['n'].dtype == torch.int64 and d['n'].tolist() == [7]; sys.exit(0 if ok else 1)";
  CATCH_CHECK(run_python("-c \"" + check + "\" " + (dir / "w.pt")) == 0);
}

CATCH_TEST_CASE("load_tensor_dict reads Python's torch.save of a dict and of an OrderedDict") {
  TempDir dir("state-dict");
  const std::string write =
      "import sys, collections, torch; "
      "items = [('x', torch.tensor([1.5, -2.0])), ('k', torch.tensor([3]))]; "
      "torch.save(dict(items), sys.argv[1]); "
      "od = collections.OrderedDict(items); od._metadata = collections.OrderedDict(); "
      "od._metadata[''] = {'version': 1}; torch.save(od, sys.argv[2])";
  CATCH_REQUIRE(
      run_python("-c \"" + write + "\" " + (dir / "plain.pt") + " " + (dir / "ordered.pt")) == 0);
  for (const char* name : {"plain.pt", "ordered.pt"}) {
    CATCH_CAPTURE(name);
    const TensorDict d = flatface::load_tensor_dict(dir / name);
    CATCH_CHECK(keys_of(d) == std::vector<std::string>{"x", "k"});
    CATCH_CHECK(d.at("x").scalar_type() == at::kFloat);
    CATCH_CHECK(d.at("x")[0].item<float>() == 1.5f);
    CATCH_CHECK(d.at("x")[1].item<float>() == -2.0f);
    CATCH_CHECK(d.at("k").scalar_type() == at::kLong);
    CATCH_CHECK(d.at("k")[0].item<std::int64_t>() == 3);
  }
}

CATCH_TEST_CASE("An IResNet-18 written by C++ is reproduced by an independent Python IResNet") {
  TempDir dir("state-dict");
  torch::manual_seed(1);
  auto net = flatface::testing::make_backbone(
      "iresnet", {{"depth", 18}, {"width", 16}, {"input", 56}, {"embedding", 128}});
  randomise_state(*net);
  net->eval();
  const auto input = at::randn({3, 3, 56, 56});
  at::Tensor output;
  {
    torch::NoGradGuard no_grad;
    output = net->forward(input);
  }
  flatface::save_tensor_dict(dir / "weights.pt", flatface::state_dict(*net));
  TensorDict io;
  io.insert("input", input);
  io.insert("output", output);
  flatface::save_tensor_dict(dir / "io.pt", io);
  CATCH_CHECK(run_python(reference_script() + " check --depth 18 --width 16 --input 56 " +
                         "--embedding 128 --weights " + (dir / "weights.pt") + " --io " +
                         (dir / "io.pt")) == 0);
}

CATCH_TEST_CASE(
    "Python's model.state_dict() in either torch.save format loads into the C++ iresnet-small and "
    "gives its output") {
  for (const std::string format : {"zip", "legacy"}) {
    CATCH_CAPTURE(format);
    TempDir dir("state-dict");
    // iresnet-small's defaults: depth 18, width 16, 56x56, stride-2 stem, 128-d.
    CATCH_REQUIRE(run_python(reference_script() + " export --depth 18 --width 16 --input 56 " +
                             "--stem-stride 2 --embedding 128 --format " + format + " --weights " +
                             (dir / "weights.pt") + " --io " + (dir / "io.pt")) == 0);
    auto net = flatface::testing::make_backbone("iresnet-small");
    flatface::load_weights(*net, dir / "weights.pt");
    const TensorDict io = flatface::load_tensor_dict(dir / "io.pt");
    net->eval();
    torch::NoGradGuard no_grad;
    const auto output = net->forward(io.at("input"));
    CATCH_CHECK(at::allclose(output, io.at("output"), 1e-4, 1e-4));
  }
}

CATCH_TEST_CASE("load_tensor_dict reads Python's legacy (non-zip) torch.save as its zip format") {
  TempDir dir("state-dict");
  // Views of one storage (offset, stride, transposed), several dtypes, a 0-dim and an empty
  // tensor; the same items as a dict and as a state-dict OrderedDict, and once more as a zip.
  const std::string write =
      "import sys, collections, torch; "
      "t = torch.arange(10, dtype=torch.float32); m = torch.arange(6.0).reshape(2, 3); "
      "items = [('view', t[2:5]), ('whole', t), ('strided', t[::3]), ('transposed', m.t()), "
      "('k', torch.tensor([3])), ('d', torch.tensor([0.1], dtype=torch.float64)), "
      "('h', torch.tensor([0.5, -2.0], dtype=torch.float16)), "
      "('u', torch.tensor([7, 255], dtype=torch.uint8)), ('b', torch.tensor([True, False])), "
      "('scalar', torch.tensor(4.0)), ('empty', torch.zeros(0, 3))]; "
      "od = collections.OrderedDict(items); od._metadata = collections.OrderedDict(); "
      "od._metadata[''] = {'version': 1}; "
      "torch.save(dict(items), sys.argv[1], _use_new_zipfile_serialization=False); "
      "torch.save(od, sys.argv[2], _use_new_zipfile_serialization=False); "
      "torch.save(dict(items), sys.argv[3])";
  CATCH_REQUIRE(run_python("-c \"" + write + "\" " + (dir / "plain.pt") + " " +
                           (dir / "ordered.pt") + " " + (dir / "zip.pt")) == 0);
  const TensorDict zip = flatface::load_tensor_dict(dir / "zip.pt");
  for (const char* name : {"plain.pt", "ordered.pt"}) {
    CATCH_CAPTURE(name);
    const TensorDict d = flatface::load_tensor_dict(dir / name);
    CATCH_REQUIRE(keys_of(d) == keys_of(zip));
    for (const auto& e : zip) {
      CATCH_CAPTURE(e.key());
      const at::Tensor& t = d.at(e.key());
      CATCH_CHECK(t.scalar_type() == e.value().scalar_type());
      CATCH_CHECK(t.sizes() == e.value().sizes());
      CATCH_CHECK(t.strides() == e.value().strides());
      CATCH_CHECK(t.equal(e.value()));
    }
    // By hand, so that a mistake shared with the zip reader cannot hide.
    CATCH_CHECK(d.at("view").equal(at::arange(2, 5, at::kFloat)));
    CATCH_CHECK(d.at("strided").equal(at::arange(0, 10, 3, at::kFloat)));
    CATCH_CHECK(d.at("transposed").equal(at::arange(6, at::kFloat).reshape({2, 3}).t()));
    CATCH_CHECK(d.at("h")[1].item<float>() == -2.0f);
    CATCH_CHECK(d.at("u")[1].item<std::uint8_t>() == 255);
    CATCH_CHECK(d.at("scalar").dim() == 0);
    CATCH_CHECK(d.at("scalar").item<float>() == 4.0f);
    CATCH_CHECK(d.at("empty").sizes() == at::IntArrayRef{0, 3});
  }
}

CATCH_TEST_CASE("A dict or state dict of one tensor loads from either format") {
  TempDir dir("state-dict");
  // One item is pickled with SETITEM (and the legacy list of one storage key with APPEND), not
  // with the batch opcodes of larger dicts.
  const std::string write =
      "import sys, collections, torch; w = torch.tensor([0.25, -4.0]); "
      "od = collections.OrderedDict(w=w); od._metadata = collections.OrderedDict(); "
      "od._metadata[''] = {'version': 1}; "
      "[torch.save(o, f, _use_new_zipfile_serialization=z) for o, f, z in "
      "[({'w': w}, sys.argv[1], True), ({'w': w}, sys.argv[2], False), "
      "(od, sys.argv[3], True), (od, sys.argv[4], False)]]";
  CATCH_REQUIRE(run_python("-c \"" + write + "\" " + (dir / "zip.pt") + " " + (dir / "legacy.pt") +
                           " " + (dir / "od_zip.pt") + " " + (dir / "od_legacy.pt")) == 0);
  for (const char* name : {"zip.pt", "legacy.pt", "od_zip.pt", "od_legacy.pt"}) {
    CATCH_CAPTURE(name);
    const TensorDict d = flatface::load_tensor_dict(dir / name);
    CATCH_CHECK(keys_of(d) == std::vector<std::string>{"w"});
    CATCH_CHECK(d.at("w").equal(at::tensor(std::vector<float>{0.25f, -4.0f})));
  }
}

CATCH_TEST_CASE("Tensors saved from a GPU load onto the CPU, from either format") {
  TempDir dir("state-dict");
  // No GPU here: the files of a CPU tensor are rewritten to name the storage's device 'cuda:0',
  // which is what torch.save of a GPU tensor writes (torch.load(map_location='cpu') reads them).
  const std::string write =
      "import sys, zipfile, torch; "
      "torch.save({'w': torch.tensor([1.5, 2.5])}, sys.argv[1], "
      "_use_new_zipfile_serialization=False); "
      "torch.save({'w': torch.tensor([1.5, 2.5])}, sys.argv[2]); "
      "cpu, gpu = b'X\\x03\\x00\\x00\\x00cpu', b'X\\x06\\x00\\x00\\x00cuda:0'; "
      "data = open(sys.argv[1], 'rb').read(); assert data.count(cpu) == 1; "
      "open(sys.argv[1], 'wb').write(data.replace(cpu, gpu)); "
      "src = zipfile.ZipFile(sys.argv[2]); entries = [(i, src.read(i)) for i in src.infolist()]; "
      "out = zipfile.ZipFile(sys.argv[3], 'w'); "
      "[out.writestr(i, b.replace(cpu, gpu) if i.filename.endswith('data.pkl') else b) "
      "for i, b in entries]; out.close(); "
      "assert all(torch.load(f, map_location='cpu')['w'].tolist() == [1.5, 2.5] "
      "for f in sys.argv[1::2])";
  CATCH_REQUIRE(run_python("-c \"" + write + "\" " + (dir / "legacy.pt") + " " + (dir / "zip.pt") +
                           " " + (dir / "gpu_zip.pt")) == 0);
  for (const char* name : {"legacy.pt", "gpu_zip.pt"}) {
    CATCH_CAPTURE(name);
    const TensorDict d = flatface::load_tensor_dict(dir / name);
    CATCH_CHECK(d.at("w").device().is_cpu());
    CATCH_CHECK(d.at("w").equal(at::tensor(std::vector<float>{1.5f, 2.5f})));
  }
}

CATCH_TEST_CASE("A truncated or altered legacy file is a RuntimeError naming it") {
  TempDir dir("state-dict");
  CATCH_REQUIRE(run_python("-c \"import sys, torch; torch.save({'w': torch.arange(100.0)}, "
                           "sys.argv[1], _use_new_zipfile_serialization=False)\" " +
                           (dir / "w.pt")) == 0);
  const std::string whole = flatface::testing::text_of(dir / "w.pt");
  auto cut = [&](const std::string& name, std::size_t size) {
    std::ofstream(dir / name, std::ios::binary) << whole.substr(0, size);
    return dir / name;
  };
  auto error_of = [](const std::string& path) {
    return flatface::testing::runtime_error_of([&] { flatface::load_tensor_dict(path); });
  };
  // 100 floats are the last 400 bytes, after their 8-byte element count.
  const std::string in_pickles = cut("pickles.pt", 100);
  CATCH_CHECK_THAT(error_of(in_pickles), catch_compat::Contains(in_pickles + ": ") &&
                                             catch_compat::Contains("pickle is truncated"));
  const std::string in_data = cut("data.pt", whole.size() - 1);
  CATCH_CHECK_THAT(error_of(in_data), catch_compat::Contains(in_data + ": truncated: storage") &&
                                          catch_compat::Contains("needs 400 bytes"));
  // The storage's element count no longer matches its tensor's.
  std::string recounted = whole;
  recounted[whole.size() - 400 - 8] = 99;
  std::ofstream(dir / "count.pt", std::ios::binary) << recounted;
  CATCH_CHECK_THAT(error_of(dir / "count.pt"),
                   catch_compat::Contains("holds 99 elements where its tensors need 100"));
}

CATCH_TEST_CASE("load_state_dict names missing, unexpected and mis-shaped keys and the source") {
  auto net = flatface::testing::make_backbone("iresnet-small", {{"width", 4}});
  auto copy = [&] {
    TensorDict d;
    for (const auto& e : flatface::state_dict(*net)) d.insert(e.key(), e.value().clone());
    return d;
  };
  CATCH_CHECK_NOTHROW(flatface::load_state_dict(*net, copy(), "ok.pt"));

  auto missing = copy();
  CATCH_REQUIRE(missing.erase("layer2.1.bn3.running_var") == 1);
  CATCH_CHECK_THROWS_AS(flatface::load_state_dict(*net, missing, "m.pt"), flatface::ConfigError);
  CATCH_CHECK_THROWS_WITH(flatface::load_state_dict(*net, missing, "m.pt"),
                          catch_compat::StartsWith("m.pt") &&
                              catch_compat::Contains("missing keys: layer2.1.bn3.running_var"));

  auto unexpected = copy();
  unexpected.insert("head.kernel", at::randn({2}));
  CATCH_CHECK_THROWS_WITH(flatface::load_state_dict(*net, unexpected, "u.pt"),
                          catch_compat::Contains("unexpected keys: head.kernel"));

  auto misshaped = copy();
  misshaped.insert_or_assign("fc.bias", at::randn({512}));
  CATCH_CHECK_THROWS_WITH(
      flatface::load_state_dict(*net, misshaped, "s.pt"),
      catch_compat::Contains("shape mismatch: fc.bias (file [512], model [128])"));
}

CATCH_TEST_CASE("load_state_dict lists the first five keys of each kind and counts the rest") {
  auto net = flatface::testing::make_backbone("iresnet-small", {{"width", 4}});
  TensorDict d;
  for (const auto& e : flatface::state_dict(*net)) d.insert(e.key(), e.value().clone());
  // layer4.1's bn3 and three keys of the final BN1d: 5 + 3 keys, in the model's order.
  for (const char* key : {"layer4.1.bn3.weight", "layer4.1.bn3.bias", "layer4.1.bn3.running_mean",
                          "layer4.1.bn3.running_var", "layer4.1.bn3.num_batches_tracked",
                          "features.weight", "features.bias", "features.running_mean"}) {
    CATCH_REQUIRE(d.erase(key) == 1);
  }
  std::string message;
  try {
    flatface::load_state_dict(*net, d, "w.pth");
  } catch (const flatface::ConfigError& e) {
    message = e.what();
  }
  CATCH_CHECK(message ==
              "w.pth: weights do not fit the model; missing keys: layer4.1.bn3.weight, "
              "layer4.1.bn3.bias, layer4.1.bn3.running_mean, layer4.1.bn3.running_var, "
              "layer4.1.bn3.num_batches_tracked … and 3 more");
}

CATCH_TEST_CASE("A file that is not a dict of tensors is a RuntimeError naming the path") {
  TempDir dir("state-dict");
  std::ofstream(dir / "junk.pt") << "not a zip";
  CATCH_CHECK_THROWS_AS(flatface::load_tensor_dict(dir / "junk.pt"), flatface::RuntimeError);
  CATCH_CHECK_THROWS_WITH(flatface::load_tensor_dict(dir / "junk.pt"),
                          catch_compat::Contains(dir / "junk.pt"));
  CATCH_CHECK_THROWS_WITH(flatface::load_tensor_dict(dir / "absent.pt"),
                          catch_compat::Contains(dir / "absent.pt"));
  CATCH_REQUIRE(run_python("-c \"import sys, torch; torch.save(torch.zeros(2), sys.argv[1]); "
                           "torch.save({'w': torch.zeros(1), 'lr': 0.1}, sys.argv[2])\" " +
                           (dir / "tensor.pt") + " " + (dir / "float.pt")) == 0);
  CATCH_CHECK_THROWS_WITH(flatface::load_tensor_dict(dir / "tensor.pt"),
                          catch_compat::Contains("expected a dict"));
  CATCH_CHECK_THROWS_WITH(
      flatface::load_tensor_dict(dir / "float.pt"),
      catch_compat::Contains("entry 'lr'") && catch_compat::Contains("expected a tensor"));
}

CATCH_TEST_CASE("A Lightning checkpoint's 'state_dict' entries under a prefix load, the rest is "
                "left out (AdaFace's released .ckpt)") {
  TempDir dir("published");
  auto net = flatface::testing::make_backbone("iresnet-small");
  randomise_state(*net);
  const TensorDict ours = flatface::state_dict(*net);
  flatface::save_tensor_dict(dir / "backbone.pt", ours);
  const std::string script = std::string(FLATFACE_TEST_SOURCE_DIR) + "/python/published_checkpoint.py";
  for (const char* layout : {"lightning", "lightning-legacy"}) {
    CATCH_CAPTURE(layout);
    const std::string ckpt = dir / (std::string(layout) + ".ckpt");
    CATCH_REQUIRE(run_python(script + " " + layout + " " + (dir / "backbone.pt") + " " + ckpt) == 0);
    const TensorDict read = flatface::load_weights_dict(ckpt, {"model."});
    CATCH_CHECK(keys_of(read) == keys_of(ours));
    for (const auto& e : ours) CATCH_CHECK(at::equal(read.at(e.key()), e.value()));

    auto fresh = flatface::testing::make_backbone("iresnet-small");
    flatface::load_weights(*fresh, ckpt, {"model."});
    for (const auto& e : flatface::state_dict(*fresh)) CATCH_CHECK(at::equal(e.value(), ours.at(e.key())));

    // Without the prefix the names do not fit: the error names the file and a wrapped key.
    CATCH_CHECK_THROWS_WITH(flatface::load_weights(*fresh, ckpt),
                            catch_compat::Contains(ckpt) && catch_compat::Contains("model.conv1.weight"));
    CATCH_CHECK_THROWS_WITH(flatface::load_weights_dict(ckpt, {"backbone."}),
                            catch_compat::Contains("prefix 'backbone.'") &&
                                catch_compat::Contains("model.conv1.weight"));
  }
}

CATCH_TEST_CASE("An insightface training checkpoint's 'state_dict_backbone' loads as the weights") {
  TempDir dir("published");
  auto net = flatface::testing::make_backbone("iresnet-small");
  randomise_state(*net);
  const TensorDict ours = flatface::state_dict(*net);
  flatface::save_tensor_dict(dir / "backbone.pt", ours);
  const std::string script = std::string(FLATFACE_TEST_SOURCE_DIR) + "/python/published_checkpoint.py";
  CATCH_REQUIRE(run_python(script + " insightface " + (dir / "backbone.pt") + " " +
                           (dir / "checkpoint_gpu_0.pt")) == 0);
  const TensorDict read = flatface::load_weights_dict(dir / "checkpoint_gpu_0.pt");
  CATCH_CHECK(keys_of(read) == keys_of(ours));
  for (const auto& e : ours) CATCH_CHECK(at::equal(read.at(e.key()), e.value()));
}

CATCH_TEST_CASE("Objects of other classes in a torch.save file read as dicts of what built them") {
  TempDir dir("objects");
  // argparse.Namespace: NEWOBJ + BUILD(state); collections.Counter: REDUCE(args) + its items.
  const std::string write =
      "import sys, argparse, collections, torch; "
      "torch.save({'w': torch.arange(3.0), 'args': argparse.Namespace(lr=0.1), "
      "'milestones': collections.Counter([12, 20, 20]), 'again': argparse.Namespace(lr=0.2)}, "
      "sys.argv[1])";
  CATCH_REQUIRE(run_python("-c \"" + write + "\" " + (dir / "objects.pt")) == 0);
  const c10::IValue v = flatface::read_torch_file(dir / "objects.pt");
  CATCH_REQUIRE(v.isGenericDict());
  const auto d = v.toGenericDict();
  CATCH_CHECK(at::equal(d.at("w").toTensor(), at::arange(3.0)));
  const auto state = [](const c10::IValue& object) {
    return object.toGenericDict().at(flatface::kPickledState).toGenericDict();
  };
  CATCH_CHECK(state(d.at("args")).at("lr").toDouble() == 0.1);
  CATCH_CHECK(state(d.at("again")).at("lr").toDouble() == 0.2);  // its own dict, not the first's
  const auto counter = d.at("milestones").toGenericDict().at(flatface::kPickledArgs).toTupleRef();
  const auto counts = counter.elements().at(0).toGenericDict();
  CATCH_CHECK(counts.at(12).toInt() == 1);
  CATCH_CHECK(counts.at(20).toInt() == 2);
}

CATCH_TEST_CASE("A torch.save pickle whose only other class is the tensors' empty OrderedDict() "
                "hooks is left to libtorch as it is") {
  TempDir dir("hooks");
  const std::string write =
      "import sys, collections, torch; w = torch.arange(3.0); "
      "torch.save({'w': w}, sys.argv[1]); "
      "torch.save({'sd': collections.OrderedDict([('w', w)])}, sys.argv[2])";
  CATCH_REQUIRE(run_python("-c \"" + write + "\" " + (dir / "plain.pt") + " " + (dir / "nested.pt")) == 0);
  auto pickle_of = [](const std::string& path) {
    caffe2::serialize::PyTorchStreamReader reader(path);
    const auto [data, size] = reader.getRecord("data.pkl");
    return std::string(static_cast<const char*>(data.get()), size);
  };
  const std::string plain = pickle_of(dir / "plain.pt");
  CATCH_REQUIRE(plain.find("collections\nOrderedDict\n") != std::string::npos);  // the hooks
  CATCH_CHECK_FALSE(flatface::objects_as_dicts(plain).has_value());
  // An OrderedDict with items is a dict libtorch cannot build: rewritten.
  CATCH_CHECK(flatface::objects_as_dicts(pickle_of(dir / "nested.pt")).has_value());
  const auto nested = flatface::read_torch_file(dir / "nested.pt").toGenericDict();
  CATCH_CHECK(at::equal(nested.at("sd").toGenericDict().at("w").toTensor(), at::arange(3.0)));
}
