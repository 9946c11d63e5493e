// The experiment file: parsing, error positions, --set overrides, the grid and run ids.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "catch_compat.hpp"
#include "cli_test_support.hpp"
#include "experiment/experiment.hpp"

using flatface::ConfigError;
using flatface::Experiment;

namespace fs = std::filesystem;

using flatface::testing::config_error;
using flatface::testing::contains;
using flatface::testing::TempDir;

namespace {

const std::string kGrid = R"([experiment]
name = "grid"
seeds = [0, 1, 2]

[data]
train = { plugin = "synthetic", classes = 10 }
eval = [{ name = "LFW", plugin = "synthetic-pairs", pairs = 20 }]

[model]
backbone = { plugin = "tiny", embedding = 16 }

[train]
epochs = 2

[[setup]]
name = "ArcFace"
head = { plugin = "arcface", s = 64.0, m = 0.5 }

[[setup]]
name = "SAM-ArcFace"
head = { plugin = "arcface", s = 64.0, m = 0.5 }
perturbation = { plugin = "sam", rho = [0.05, 0.1, 0.2] }
)";

const std::string kExtraSetup = R"(
[[setup]]
name = "AACE-ArcFace"
head = { plugin = "arcface", s = 64.0, m = 0.5 }
perturbation = { plugin = "aace", rho = 0.05 }
)";

// Replaces the first occurrence of `from`, which must be present.
std::string replace(std::string text, const std::string& from, const std::string& to) {
  auto at = text.find(from);
  if (at == std::string::npos) throw std::logic_error("test text lacks: " + from);
  return text.replace(at, from.size(), to);
}

// "file:line:col" of the nth occurrence of `needle` in `text` (1-based, as TOML tools count).
std::string where(const std::string& file, const std::string& text, const std::string& needle,
                  int nth = 1) {
  auto at = text.find(needle);
  while (--nth > 0 && at != std::string::npos) at = text.find(needle, at + 1);
  if (at == std::string::npos) throw std::logic_error("test text lacks: " + needle);
  auto line_start = text.rfind('\n', at);
  line_start = line_start == std::string::npos ? 0 : line_start + 1;
  auto line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n');
  return file + ":" + std::to_string(line) + ":" + std::to_string(at - line_start + 1);
}

std::string load_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return config_error([&] { flatface::parse_experiment(text, "x.toml", overrides); });
}

std::vector<std::string> ids(const Experiment& e) {
  std::vector<std::string> out;
  for (const auto& r : flatface::expand_grid(e)) out.push_back(r.id);
  return out;
}

Experiment parse(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return flatface::parse_experiment(text, "x.toml", overrides);
}

}  // namespace

CATCH_TEST_CASE("an experiment file is read from disk into typed settings") {
  TempDir tmp("experiment");
  auto file = tmp.write("grid.toml", kGrid);
  Experiment e = flatface::load_experiment(file);
  CATCH_CHECK(e.file == file);
  CATCH_CHECK(e.name == "grid");
  CATCH_CHECK(e.output == "results/grid");
  CATCH_CHECK(e.train_data.plugin == "synthetic");
  CATCH_CHECK(e.train_data.options.get_int("classes", 0) == 10);
  CATCH_REQUIRE(e.eval.size() == 1);
  CATCH_CHECK(e.eval[0].name == "LFW");
  CATCH_CHECK(e.eval[0].data.plugin == "synthetic-pairs");
  CATCH_CHECK(e.backbone.plugin == "tiny");
  CATCH_CHECK(e.train.epochs == 2);
  CATCH_REQUIRE(e.setups.size() == 2);
  CATCH_CHECK(e.setups[0].perturbation.plugin == "none");  // no perturbation: plain SGD
  CATCH_CHECK(e.setups[0].sweep.empty());
  CATCH_CHECK(e.setups[1].perturbation.plugin == "sam");
  // A list of rho is a sweep of perturbation.rho.
  CATCH_REQUIRE(e.setups[1].sweep.size() == 1);
  CATCH_CHECK(e.setups[1].sweep[0].key == "perturbation.rho");
  CATCH_CHECK(e.setups[1].sweep[0].values ==
              std::vector<flatface::Options::Scalar>{0.05, 0.1, 0.2});
}

CATCH_TEST_CASE("a missing experiment file is a config error naming it") {
  CATCH_CHECK(config_error([] { flatface::load_experiment("/no/such/x.toml"); }) ==
              "/no/such/x.toml: cannot open the experiment file");
}

CATCH_TEST_CASE("unset training settings default to the paper's CASIA-WebFace schedule") {
  // Paper, section 4: SGD, momentum 0.9, weight decay 5e-4, lr 0.1, 50 epochs, lr / 10 at 28,
  // 38 and 46. DESIGN.md: three seeds, BN statistics frozen in the second pass.
  Experiment e = parse(replace(kGrid, "epochs = 2\n", ""));
  CATCH_CHECK(e.train.epochs == 50);
  CATCH_CHECK(e.train.lr == 0.1);
  CATCH_CHECK(e.train.momentum == 0.9);
  CATCH_CHECK(e.train.weight_decay == 5e-4);
  CATCH_CHECK(e.train.milestones == std::vector<std::int64_t>{28, 38, 46});
  CATCH_CHECK(e.train.gamma == 0.1);
  CATCH_CHECK(e.train.warmup_epochs == 0);
  CATCH_CHECK(e.train.precision == "fp32");
  Experiment d = parse(replace(kGrid, "seeds = [0, 1, 2]\n", ""));
  CATCH_CHECK(d.seeds == std::vector<std::int64_t>{0, 1, 2});
  CATCH_CHECK(d.device == "auto");
  CATCH_CHECK(d.setups[1].bn_second_pass == "freeze");
}

CATCH_TEST_CASE("the design document's Table 2 file parses") {
  const std::string table2 = R"([experiment]
name    = "casia-r50"
seeds   = [0, 1, 2]
device  = "auto"                 # cpu | cuda | cuda:N | auto
output  = "results/casia-r50"

[data]
train = { plugin = "insightface-rec", path = "data/faces_webface_112x112" }
eval = [
  { name = "LFW",    plugin = "insightface-bin", path = "data/faces_webface_112x112/lfw.bin" },
  { name = "CFP-FP", plugin = "insightface-bin", path = "data/faces_webface_112x112/cfp_fp.bin" },
]

[model]
backbone = { plugin = "iresnet", depth = 50, embedding = 512 }

[train]
epochs = 50
batch_size = 512
lr = 0.1
momentum = 0.9
weight_decay = 5e-4
milestones = [28, 38, 46]
gamma = 0.1

[[setup]]
name = "ArcFace"
head = { plugin = "arcface", s = 64.0, m = 0.5 }
perturbation = { plugin = "none" }

[[setup]]
name = "FlatFace-SAM-ArcFace"
head = { plugin = "arcface", s = 64.0, m = 0.5 }
perturbation = { plugin = "sam", rho = 0.1 }
)";
  Experiment e = parse(table2);
  CATCH_CHECK(e.eval.size() == 2);
  CATCH_CHECK(e.eval[1].name == "CFP-FP");
  CATCH_CHECK(e.train.batch_size == 512);
  CATCH_CHECK(flatface::expand_grid(e).size() == 6);
}

CATCH_TEST_CASE("a misspelled plugin option is reported at its position with the known keys") {
  // What the host does with a perturbation table: hand the options to the plugin, let it read
  // what it understands (SAM reads rho), then reject whatever is left.
  std::string text = replace(kGrid, "rho = [0.05, 0.1, 0.2]", "rhoo = 0.1");
  Experiment e = parse(text);
  auto run = flatface::expand_grid(e).back();
  CATCH_REQUIRE(e.setups[run.setup].name == "SAM-ArcFace");
  auto options = flatface::perturbation_options(e, run);
  options.get_double("rho", 0.1);
  CATCH_CHECK(config_error([&] { options.check_all_used(); }) ==
              where("x.toml", text, "rhoo") +
                  ": unknown key 'rhoo' for perturbation 'sam' (known: bn_second_pass, epsilon, plugin, "
                  "rho)");
}

CATCH_TEST_CASE("a misspelled key in a host section is reported at its position") {
  CATCH_SECTION("[experiment]") {
    std::string text = replace(kGrid, "seeds =", "seed =");
    CATCH_CHECK(load_error(text) ==
                where("x.toml", text, "seed =") +
                    ": unknown key 'seed' for [experiment] (known: device, name, output, seeds, "
                    "sweep, threads)");
  }
  CATCH_SECTION("[train]") {
    std::string text = replace(kGrid, "epochs = 2", "epoch = 2");
    std::string msg = load_error(text);
    CATCH_CHECK(
        msg.rfind(where("x.toml", text, "epoch = 2") + ": unknown key 'epoch' for [train] (known: ",
                  0) == 0);
    CATCH_CHECK(msg.find("epochs") != std::string::npos);
  }
  CATCH_SECTION("[[setup]]") {
    std::string text = replace(kGrid, "perturbation =", "perturbaton =");
    CATCH_CHECK(load_error(text) ==
                where("x.toml", text, "perturbaton") +
                    ": unknown key 'perturbaton' for [[setup]] (known: head, name, perturbation, "
                    "sweep)");
  }
  CATCH_SECTION("a whole section") {
    std::string text = replace(kGrid, "[train]", "[trian]");
    CATCH_CHECK(load_error(text).rfind(where("x.toml", text, "[trian]") +
                                           ": unknown key 'trian' for the experiment file",
                                       0) == 0);
  }
}

CATCH_TEST_CASE("a value of the wrong type is reported at its position with the expected type") {
  std::string text = replace(kGrid, "epochs = 2", "epochs = \"two\"");
  CATCH_CHECK(load_error(text) ==
              where("x.toml", text, "epochs") + ": key 'epochs' for [train] must be an integer");
  text = replace(kGrid, "seeds = [0, 1, 2]", "seeds = [0, \"one\"]");
  CATCH_CHECK(load_error(text) == where("x.toml", text, "seeds") +
                                      ": key 'seeds' for [experiment] must be an integer or a "
                                      "list of integers");
  text = replace(kGrid, "rho = [0.05, 0.1, 0.2]", "rho = \"big\"");
  CATCH_CHECK(load_error(text) == where("x.toml", text, "rho") +
                                      ": key 'rho' for perturbation 'sam' must be a number or a "
                                      "list of numbers");
}

CATCH_TEST_CASE("a TOML syntax error is reported as file:line:col") {
  // The parser stops at the first character it cannot use: here the second '.' of 0.1.2.
  std::string text = replace(kGrid, "epochs = 2", "epochs = 0.1.2");
  std::string msg = load_error(text);
  CATCH_CHECK(msg.rfind(where("x.toml", text, ".2\n") + ": ", 0) == 0);
  text = replace(kGrid, "name = \"grid\"", "name = \"grid");
  msg = load_error(text);
  CATCH_CHECK(msg.rfind("x.toml:2:", 0) == 0);
}

CATCH_TEST_CASE("structural mistakes are reported") {
  CATCH_CHECK(load_error(replace(kGrid, "name = \"grid\"\n", "")) ==
              "x.toml: [experiment] needs a 'name'");
  CATCH_CHECK(load_error(kGrid.substr(0, kGrid.find("[[setup]]"))) ==
              "x.toml: the experiment needs at least one [[setup]]");
  std::string text = replace(kGrid, "SAM-ArcFace", "ArcFace");
  CATCH_CHECK(load_error(text) ==
              where("x.toml", text, "[[setup]]", 2) + ": two setups are named 'ArcFace'");
  text = replace(kGrid, "seeds = [0, 1, 2]", "seeds = [0, 1, 0]");
  CATCH_CHECK(load_error(text) ==
              where("x.toml", text, "seeds") + ": seed 0 is listed twice in [experiment] seeds");
  text = replace(kGrid, "rho = [0.05, 0.1, 0.2]", "rho = [0.1, 0.1]");
  CATCH_CHECK(load_error(text) ==
              where("x.toml", text, "rho") + ": rho 0.1 is listed twice for perturbation 'sam'");
}

CATCH_TEST_CASE("--set overrides numbers, lists, strings and bare words before validation") {
  Experiment e = parse(kGrid, {"train.epochs=7", "experiment.seeds=[5]", "experiment.name=\"b\"",
                               "experiment.device=cuda:1", "train.lr=0.02"});
  CATCH_CHECK(e.train.epochs == 7);
  CATCH_CHECK(e.seeds == std::vector<std::int64_t>{5});
  CATCH_CHECK(e.name == "b");
  CATCH_CHECK(e.device == "cuda:1");  // not TOML: taken as a string
  CATCH_CHECK(e.train.lr == 0.02);
}

CATCH_TEST_CASE("--set reaches into a list of setups by index and creates missing keys") {
  Experiment e = parse(kGrid, {"setup.1.perturbation.rho=0.2", "setup.0.head.m=0.4",
                               "train.warmup_epochs=1", "plugins.paths=[\"/opt/p\"]"});
  CATCH_CHECK(e.setups[1].sweep.empty());  // one rho is an option, not a sweep
  CATCH_CHECK(flatface::expand_grid(e).back().rho == 0.2);
  CATCH_CHECK(e.setups[0].head.options.get_double("m", 0) == 0.4);
  CATCH_CHECK(e.train.warmup_epochs == 1);
  CATCH_CHECK(e.plugin_paths == std::vector<std::string>{"/opt/p"});
  CATCH_CHECK(flatface::expand_grid(e).size() == 6);
}

CATCH_TEST_CASE("--set overrides are kept in the resolved TOML, which parses to the same grid") {
  Experiment e = parse(kGrid, {"setup.1.perturbation.rho=[0.3, 0.4]", "train.epochs=3"});
  Experiment again = flatface::parse_experiment(e.resolved_toml, "resolved.toml");
  CATCH_CHECK(again.train.epochs == 3);
  CATCH_CHECK(ids(again) == ids(e));
}

CATCH_TEST_CASE("a malformed --set is a config error that quotes it") {
  CATCH_CHECK(load_error(kGrid, {"train.epochs"}) ==
              "--set train.epochs: expected KEY=VALUE (e.g. train.epochs=2)");
  CATCH_CHECK(load_error(kGrid, {"setup.5.name=x"}) ==
              "--set setup.5.name=x: 'setup' has 2 entries; '5' is not the index of one");
  CATCH_CHECK(load_error(kGrid, {"train.epochs.x=1"}) ==
              "--set train.epochs.x=1: 'epochs' is not a table");
}

CATCH_TEST_CASE("a --set value of the wrong type or for an unknown key names the --set") {
  std::string msg = load_error(kGrid, {"train.epochs=two"});
  CATCH_CHECK(msg == "--set train.epochs: key 'epochs' for [train] must be an integer");
  msg = load_error(kGrid, {"train.epoch=2"});
  CATCH_CHECK(msg.rfind("--set train.epoch: unknown key 'epoch' for [train]", 0) == 0);
  // A whole table from --set: its keys are named by the --set too.
  Experiment e = parse(kGrid, {"model.backbone={ plugin = \"tiny\", embedding = \"wide\" }"});
  CATCH_CHECK(config_error([&] { e.backbone.options.get_int("embedding", 0); }) ==
              "--set model.backbone: key 'embedding' for backbone 'tiny' must be an integer");
}

CATCH_TEST_CASE("the grid is seeds x setups x each setup's rho list") {
  Experiment e = parse(kGrid);
  auto runs = flatface::expand_grid(e);
  // 3 seeds x (ArcFace without rho + SAM with 3 values of rho) = 12 runs.
  CATCH_REQUIRE(runs.size() == 3 * (1 + 3));
  std::set<std::string> distinct;
  for (const auto& r : runs) distinct.insert(r.id);
  CATCH_CHECK(distinct.size() == runs.size());
  int with_rho = 0;
  for (const auto& r : runs) {
    if (e.setups[r.setup].name == "ArcFace") {
      CATCH_CHECK(!r.rho);
    } else {
      CATCH_REQUIRE(r.rho);
      ++with_rho;
      CATCH_CHECK(flatface::perturbation_options(e, r).get_double("rho", -1) == *r.rho);
    }
  }
  CATCH_CHECK(with_rho == 9);
  CATCH_CHECK(parse(kGrid, {"experiment.seeds=[4]"}).setups.size() == 2);
  CATCH_CHECK(flatface::expand_grid(parse(kGrid, {"experiment.seeds=[4]"})).size() == 4);
  CATCH_CHECK(flatface::expand_grid(parse(kGrid + kExtraSetup)).size() == 3 * (1 + 3 + 1));
}

CATCH_TEST_CASE("run ids are short hex hashes that do not depend on unrelated settings") {
  auto base = ids(parse(kGrid));
  for (const auto& id : base) {
    CATCH_CHECK(id.size() == 10);
    CATCH_CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
  }
  CATCH_CHECK(ids(parse(kGrid)) == base);  // stable
  // Another setup adds runs but leaves the existing ids alone.
  auto more = ids(parse(kGrid + kExtraSetup));
  CATCH_CHECK(std::vector<std::string>(more.begin(), more.begin() + 12) == base);
  // Where results go and what runs them is not part of a run's identity.
  CATCH_CHECK(ids(parse(kGrid, {"experiment.output=\"elsewhere\"", "experiment.device=cpu",
                                "experiment.threads=2", "train.log_every_steps=5"})) == base);
  // Fewer seeds keep the remaining runs' ids.
  auto seed1 = ids(parse(kGrid, {"experiment.seeds=[1]"}));
  for (const auto& id : seed1) CATCH_CHECK(std::count(base.begin(), base.end(), id) == 1);
}

CATCH_TEST_CASE("run ids change when anything that shapes the training changes") {
  auto base = ids(parse(kGrid));
  auto changed = [&](const std::string& set) {
    auto other = ids(parse(kGrid, {set}));
    std::size_t same = 0;
    for (const auto& id : other) same += std::count(base.begin(), base.end(), id);
    return same;
  };
  CATCH_CHECK(changed("train.lr=0.05") == 0);
  CATCH_CHECK(changed("train.epochs=3") == 0);
  CATCH_CHECK(changed("train.batch_size=64") == 0);
  CATCH_CHECK(changed("model.backbone.embedding=8") == 0);
  CATCH_CHECK(changed("data.train.classes=11") == 0);
  CATCH_CHECK(changed("setup.0.head.m=0.45") == 9);  // only ArcFace's 3 runs change
  CATCH_CHECK(changed("setup.1.perturbation.rho=[0.05, 0.1, 0.3]") == 12 - 3);  // rho 0.2's runs
  CATCH_CHECK(changed("setup.1.perturbation.adaptive=true") == 3);  // all SAM runs change
}

CATCH_TEST_CASE("[model] init names a weights file, and the path is part of every run id") {
  const std::string with_init =
      replace(kGrid, "[model]\n", "[model]\ninit = \"weights/backbone.pth\"\n");
  Experiment e = parse(with_init);
  CATCH_CHECK(e.init == "weights/backbone.pth");  // as written: read from the working directory
  CATCH_CHECK(parse(kGrid).init.empty());
  // Other starting weights, other results: no id is shared with the grid without init, nor with
  // the grid that starts from another file.
  auto base = ids(parse(kGrid));
  auto init = ids(e);
  auto other = ids(parse(kGrid, {"model.init=\"other.pth\""}));
  CATCH_CHECK(init.size() == base.size());
  for (const auto& id : init) {
    CATCH_CHECK(std::count(base.begin(), base.end(), id) == 0);
    CATCH_CHECK(std::count(other.begin(), other.end(), id) == 0);
  }
  // The resolved TOML (what checkpoints and result files keep) carries it.
  Experiment again = parse(e.resolved_toml);
  CATCH_CHECK(again.init == "weights/backbone.pth");
  CATCH_CHECK(ids(again) == init);
}

CATCH_TEST_CASE("[model] init must be a non-empty string; other [model] keys are typos") {
  const std::string number = replace(kGrid, "[model]\n", "[model]\ninit = 3\n");
  CATCH_CHECK(load_error(number) == where("x.toml", number, "init") +
                                        ": [model] init must be the path of a weights file "
                                        "(torch.save of a state dict), not an integer");
  const std::string empty = replace(kGrid, "[model]\n", "[model]\ninit = \"\"\n");
  CATCH_CHECK(contains(load_error(empty), "not an empty string"));
  const std::string typo = replace(kGrid, "[model]\n", "[model]\ninti = \"w.pth\"\n");
  CATCH_CHECK(contains(load_error(typo), "unknown key 'inti' for [model] (known: backbone, init, init_prefix)"));
}

CATCH_TEST_CASE("[model] init_prefix narrows init to the entries under it and is part of the run ids") {
  const std::string with_init =
      replace(kGrid, "[model]\n", "[model]\ninit = \"adaface_ir50.ckpt\"\n");
  const std::string with_prefix =
      replace(with_init, "[model]\n", "[model]\ninit_prefix = \"model.\"\n");
  Experiment e = parse(with_prefix);
  CATCH_CHECK(e.init_prefix == "model.");
  CATCH_CHECK(parse(with_init).init_prefix.empty());
  const auto prefixed = ids(e), plain = ids(parse(with_init));
  for (const auto& id : prefixed) CATCH_CHECK(std::count(plain.begin(), plain.end(), id) == 0);
  CATCH_CHECK(ids(parse(e.resolved_toml)) == prefixed);  // kept in the resolved TOML

  const std::string alone = replace(kGrid, "[model]\n", "[model]\ninit_prefix = \"model.\"\n");
  CATCH_CHECK(contains(load_error(alone), "init_prefix must be a non-empty string beside 'init'"));
  const std::string empty = replace(with_init, "[model]\n", "[model]\ninit_prefix = \"\"\n");
  CATCH_CHECK(contains(load_error(empty), "init_prefix must be a non-empty string"));
}

CATCH_TEST_CASE("the quickstart's run ids are the ones its results were saved under") {
  // Pinned from `flatface plan experiments/quickstart.toml` before [model] init existed, and
  // found the same again with `flatface plan experiments/quickstart.toml --format json` built
  // from main at 187a750, before sweeps over any option, [train] flip and the shortest number
  // form: a grid that uses none of them must keep finding (and resuming) its results.
  Experiment e =
      flatface::load_experiment(std::string(FLATFACE_SOURCE_DIR) + "/experiments/quickstart.toml");
  CATCH_CHECK(ids(e) == std::vector<std::string>{
                            "2ac642cd76", "2ac643cd76", "2ac640cd76", "aab233e77f", "aa0bc94086",
                            "aab232e77f", "aa0bc84086", "aab231e77f", "aa0bc74086", "c2e14645c6",
                            "c2e14745c6", "c2e14445c6", "9b2297f008", "9b2298f008", "9b2295f008",
                            "eb642c7f11", "eb642b7f11", "eb642e7f11", "19a03d1e1c", "19a03c1e1c",
                            "19a03b1e1c"});
}

CATCH_TEST_CASE("an [analysis] table is read with defaults and leaves the run ids as they were") {
  const Experiment plain = flatface::parse_experiment(kGrid, "grid.toml");
  CATCH_CHECK_FALSE(plain.analysis.has_value());
  const Experiment analysed = flatface::parse_experiment(
      kGrid + "\n[analysis]\ntop_k = 3\nrho = 0.1\nbatch_norm = \"train\"\n", "grid.toml");
  CATCH_REQUIRE(analysed.analysis.has_value());
  CATCH_CHECK(analysed.analysis->top_k == 3);
  CATCH_CHECK(*analysed.analysis->rho == 0.1);
  CATCH_CHECK(analysed.analysis->batch_norm == "train");
  CATCH_CHECK(analysed.analysis->max_iterations == 100);  // PyHessian's cap
  CATCH_CHECK(analysed.analysis->tolerance == 1e-3);
  const auto a = flatface::expand_grid(plain), b = flatface::expand_grid(analysed);
  CATCH_REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CATCH_CHECK(a[i].id == b[i].id);
}

CATCH_TEST_CASE("a wrong [analysis] key or value is an error at its line") {
  try {
    flatface::parse_experiment(kGrid + "\n[analysis]\ntop_k = 1\nascent_stepz = 3\n", "grid.toml");
    CATCH_FAIL("no error");
  } catch (const ConfigError& e) {
    CATCH_CHECK(contains(e.what(), "grid.toml:"));
    CATCH_CHECK(contains(e.what(), "unknown key 'ascent_stepz' for [analysis]"));
  }
  CATCH_CHECK_THROWS_AS(
      flatface::parse_experiment(kGrid + "\n[analysis]\nbatch_norm = \"frozen\"\n", "grid.toml"),
      ConfigError);
  CATCH_CHECK_THROWS_AS(
      flatface::parse_experiment(kGrid + "\n[analysis]\nrho = -1\n", "grid.toml"), ConfigError);
}

namespace {

// The grid's ArcFace setup sweeping its margin (the paper's ablation, m in {0.3, 0.4, 0.5}).
const std::string kMarginSweep =
    replace(kGrid, "head = { plugin = \"arcface\", s = 64.0, m = 0.5 }\n",
            "head = { plugin = \"arcface\", s = 64.0, m = 0.5 }\nsweep = { \"head.m\" = [0.3, 0.4, "
            "0.5] }\n");

std::vector<std::string> labels(const Experiment& e, const std::vector<flatface::RunSpec>& runs) {
  std::vector<std::string> out;
  for (const auto& r : runs) out.push_back(flatface::describe_run(e, r));
  return out;
}

}  // namespace

CATCH_TEST_CASE("a setup's sweep gives one run per value and seed, the value in its options") {
  Experiment e = parse(kMarginSweep);
  auto runs = flatface::expand_grid(e);
  // 3 seeds x (ArcFace at 3 margins + SAM at 3 rho) = 18 runs.
  CATCH_REQUIRE(runs.size() == 18);
  std::set<std::string> distinct;
  for (const auto& r : runs) distinct.insert(r.id);
  CATCH_CHECK(distinct.size() == runs.size());
  CATCH_CHECK(labels(e, {runs[0], runs[1], runs[2], runs[3]}) ==
              std::vector<std::string>{"ArcFace seed=0 head.m=0.3", "ArcFace seed=0 head.m=0.4",
                                       "ArcFace seed=0 head.m=0.5", "ArcFace seed=1 head.m=0.3"});
  // The run sees its own margin; the written 0.5 is replaced.
  Experiment run1 = flatface::run_experiment(e, runs[1]);
  CATCH_CHECK(run1.setups[0].head.options.get_double("m", 0) == 0.4);
  CATCH_CHECK(run1.setups[0].head.options.get_double("s", 0) == 64.0);
  CATCH_CHECK(e.setups[0].head.options.fresh_copy().get_double("m", 0) == 0.5);  // untouched
  // A run whose swept value is the one written is the run of the file without the sweep: it
  // keeps its id (and its results).
  auto plain = ids(parse(kGrid));
  CATCH_CHECK(runs[2].id == plain[0]);
  CATCH_CHECK(std::count(plain.begin(), plain.end(), runs[0].id) == 0);
}

CATCH_TEST_CASE("a rho list and a sweep of perturbation.rho are one grid with the same run ids") {
  const std::string as_sweep =
      replace(kGrid, "perturbation = { plugin = \"sam\", rho = [0.05, 0.1, 0.2] }",
              "perturbation = { plugin = \"sam\" }\nsweep = { \"perturbation.rho\" = [0.05, 0.1, "
              "0.2] }");
  Experiment e = parse(as_sweep);
  CATCH_CHECK(ids(e) == ids(parse(kGrid)));
  auto runs = flatface::expand_grid(e);
  CATCH_CHECK(runs.back().rho == 0.2);
  CATCH_CHECK(flatface::describe_run(e, runs.back()) == "SAM-ArcFace seed=2 rho=0.2");
  // Nested tables name the same key: sweep.perturbation.rho = [...].
  const std::string nested =
      replace(kGrid, "perturbation = { plugin = \"sam\", rho = [0.05, 0.1, 0.2] }",
              "perturbation = { plugin = \"sam\" }\nsweep = { perturbation = { rho = [0.05, 0.1, "
              "0.2] } }");
  CATCH_CHECK(ids(parse(nested)) == ids(e));
}

CATCH_TEST_CASE(
    "the grid is the product of every axis; the experiment's sweep reaches every setup") {
  const std::string text = replace(kMarginSweep, "seeds = [0, 1, 2]\n",
                                   "seeds = [0, 1]\nsweep = { \"train.lr\" = [0.1, 0.05] }\n");
  Experiment e = parse(text);
  auto runs = flatface::expand_grid(e);
  // 2 seeds x 2 lr x (ArcFace: 3 margins + SAM: 3 rho) = 24 runs.
  CATCH_REQUIRE(runs.size() == 24);
  CATCH_CHECK(labels(e, {runs[0], runs[1], runs[3], runs[12]}) ==
              std::vector<std::string>{"ArcFace seed=0 train.lr=0.1 head.m=0.3",
                                       "ArcFace seed=0 train.lr=0.1 head.m=0.4",
                                       "ArcFace seed=0 train.lr=0.05 head.m=0.3",
                                       "SAM-ArcFace seed=0 rho=0.05 train.lr=0.1"});
  CATCH_CHECK(flatface::run_experiment(e, runs[3]).train.lr == 0.05);
  CATCH_CHECK(flatface::run_experiment(e, runs[0]).train.lr == 0.1);
  std::set<std::string> distinct;
  for (const auto& r : runs) distinct.insert(r.id);
  CATCH_CHECK(distinct.size() == runs.size());
  // The lr the file writes (0.1, the default) gives the runs of the file without the lr sweep.
  auto without = ids(parse(replace(kMarginSweep, "seeds = [0, 1, 2]\n", "seeds = [0, 1]\n")));
  CATCH_CHECK(runs[0].id == without[0]);
}

CATCH_TEST_CASE("--only selects by setup, seed, rho, id or any option, swept or written") {
  Experiment e = parse(kMarginSweep);
  auto runs = flatface::expand_grid(e);
  auto pick = [&](const std::vector<std::string>& only) {
    return labels(e, flatface::select_runs(e, runs, only));
  };
  CATCH_CHECK(pick({"head.m=0.3"}) == std::vector<std::string>{"ArcFace seed=0 head.m=0.3",
                                                               "ArcFace seed=1 head.m=0.3",
                                                               "ArcFace seed=2 head.m=0.3"});
  // SAM-ArcFace writes m = 0.5 and ArcFace sweeps through it: both have it.
  CATCH_CHECK(pick({"head.m=0.5", "seed=1"}) ==
              std::vector<std::string>{"ArcFace seed=1 head.m=0.5", "SAM-ArcFace seed=1 rho=0.05",
                                       "SAM-ArcFace seed=1 rho=0.1", "SAM-ArcFace seed=1 rho=0.2"});
  CATCH_CHECK(pick({"perturbation.rho=0.1", "seed=2"}) ==
              std::vector<std::string>{"SAM-ArcFace seed=2 rho=0.1"});
  CATCH_CHECK(pick({"rho=0.10", "seed=2"}) == pick({"perturbation.rho=0.1", "seed=2"}));
  CATCH_CHECK(pick({"setup=ArcFace", "head.m=0.4", "seed=0"}) ==
              std::vector<std::string>{"ArcFace seed=0 head.m=0.4"});
  CATCH_CHECK(pick({"id=" + runs[4].id}) == std::vector<std::string>{"ArcFace seed=1 head.m=0.4"});
  CATCH_CHECK(pick({"head.m=0.35"}).empty());
  CATCH_CHECK(config_error([&] { flatface::select_runs(e, runs, {"colour=red"}); }) ==
              "--only colour=red: unknown key 'colour' (known: setup, seed, rho, id, or an option "
              "such as head.OPTION, perturbation.OPTION, backbone.OPTION or train.KEY)");
  CATCH_CHECK(config_error([&] { flatface::select_runs(e, runs, {"head.mm=0.3"}); }) ==
              "--only head.mm=0.3: no run of x.toml sets 'head.mm' (swept keys: head.m, "
              "perturbation.rho)");
  CATCH_CHECK(config_error([&] { flatface::select_runs(e, runs, {"seed"}); }) ==
              "--only seed: expected KEY=VALUE (e.g. seed=0 or head.m=0.3)");
}

CATCH_TEST_CASE("a wrong sweep is an error naming the file, the position and the key") {
  auto sweep_error = [&](const std::string& sweep) {
    const std::string text =
        replace(kGrid, "head = { plugin = \"arcface\", s = 64.0, m = 0.5 }\n",
                "head = { plugin = \"arcface\", s = 64.0, m = 0.5 }\n" + sweep + "\n");
    return std::make_pair(load_error(text), text);
  };
  auto [unknown, t1] = sweep_error("sweep = { \"data.train.identities\" = [4, 8] }");
  CATCH_CHECK(unknown == where("x.toml", t1, "\"data.train") +
                             ": cannot sweep 'data.train.identities' in setup 'ArcFace': a swept "
                             "key is head.OPTION, perturbation.OPTION, backbone.OPTION or "
                             "train.KEY");
  auto [empty, t2] = sweep_error("sweep = { \"head.m\" = [] }");
  CATCH_CHECK(empty == where("x.toml", t2, "\"head.m\"") +
                           ": sweep of 'head.m' in setup 'ArcFace' has no values");
  auto [twice_value, t3] = sweep_error("sweep = { \"head.m\" = [0.3, 0.30] }");
  CATCH_CHECK(twice_value == where("x.toml", t3, "0.30") +
                                 ": value 0.3 is listed twice in the sweep of 'head.m' in setup "
                                 "'ArcFace'");
  auto [int_and_float, t4] = sweep_error("sweep = { \"head.s\" = [64, 64.0] }");
  CATCH_CHECK(contains(int_and_float, "value 64 is listed twice in the sweep of 'head.s'"));
  auto [not_list, t5] = sweep_error("sweep = { \"head.m\" = 0.3 }");
  CATCH_CHECK(not_list == where("x.toml", t5, "\"head.m\"") +
                              ": sweep of 'head.m' in setup 'ArcFace' must be a list of values, "
                              "not a number");
  auto [plugin, t6] = sweep_error("sweep = { \"head.plugin\" = [\"arcface\", \"cosface\"] }");
  CATCH_CHECK(plugin == where("x.toml", t6, "\"head.plugin\"") +
                            ": 'head.plugin' cannot be swept (setup 'ArcFace'); write one setup "
                            "per value");
  auto [neutral, t7] = sweep_error("sweep = { \"train.log_every_steps\" = [1, 2] }");
  CATCH_CHECK(contains(neutral, "'train.log_every_steps' changes nothing a run learns"));
  // A [train] key is checked as [train] checks it, at the sweep.
  auto [train_typo, t8] = sweep_error("sweep = { \"train.lrr\" = [0.1, 0.2] }");
  CATCH_CHECK(train_typo.rfind(
                  where("x.toml", t8, "\"train.lrr\"") + ": unknown key 'lrr' for [train] (known: ",
                  0) == 0);
  auto [train_type, t9] = sweep_error("sweep = { \"train.epochs\" = [1, \"two\"] }");
  CATCH_CHECK(train_type == where("x.toml", t9, "\"train.epochs\"") +
                                ": key 'epochs' for [train] must be an integer");
  auto [nested_list, t10] = sweep_error("sweep = { \"train.milestones\" = [[1], [2]] }");
  CATCH_CHECK(nested_list == where("x.toml", t10, "[1]") +
                                 ": sweep of 'train.milestones' in setup 'ArcFace' must list "
                                 "plain values, not an array");
}

CATCH_TEST_CASE("a key swept twice is an error naming both places") {
  // In the experiment and in a setup.
  std::string text =
      replace(kGrid, "seeds = [0, 1, 2]\n", "seeds = [0, 1, 2]\nsweep = { \"head.m\" = [0.3] }\n");
  text =
      replace(text, "name = \"ArcFace\"\n", "name = \"ArcFace\"\nsweep = { \"head.m\" = [0.4] }\n");
  CATCH_CHECK(load_error(text) == where("x.toml", text, "\"head.m\"", 2) +
                                      ": 'head.m' is swept twice for setup 'ArcFace' (also at " +
                                      where("x.toml", text, "\"head.m\"", 1) + ")");
  // As a rho list and in the setup's sweep.
  text = replace(kGrid, "name = \"SAM-ArcFace\"\n",
                 "name = \"SAM-ArcFace\"\nsweep = { \"perturbation.rho\" = [0.3] }\n");
  CATCH_CHECK(load_error(text) == where("x.toml", text, "rho = [") +
                                      ": 'perturbation.rho' is swept twice for setup "
                                      "'SAM-ArcFace' (also at " +
                                      where("x.toml", text, "\"perturbation.rho\"") + ")");
  // Quoted and nested in one table.
  text = replace(kGrid, "name = \"ArcFace\"\n",
                 "name = \"ArcFace\"\nsweep = { \"head.m\" = [0.3], head = { m = [0.4] } }\n");
  CATCH_CHECK(contains(load_error(text), "'head.m' is swept twice in setup 'ArcFace'"));
}

CATCH_TEST_CASE("a swept value that the plugin rejects is reported at the sweep") {
  // The host hands the run's options to the plugin, which reads what it knows; an option it does
  // not know is then reported where the sweep names it.
  const std::string text = replace(kGrid, "name = \"ArcFace\"\n",
                                   "name = \"ArcFace\"\nsweep = { \"head.mm\" = [0.3, 0.4] }\n");
  Experiment e = parse(text);
  auto run = flatface::expand_grid(e).front();
  flatface::Options head = flatface::run_experiment(e, run).setups[0].head.options.fresh_copy();
  head.consume("plugin");
  head.get_double("m", 0.5);
  head.get_double("s", 64);
  CATCH_CHECK(config_error([&] { head.check_all_used(); }) ==
              where("x.toml", text, "\"head.mm\"") +
                  ": unknown key 'mm' for head 'arcface' (known: m, plugin, s)");
}

CATCH_TEST_CASE("[train] flip defaults to on; turning it off is another run") {
  CATCH_CHECK(parse(kGrid).train.flip);
  CATCH_CHECK_FALSE(parse(kGrid, {"train.flip=false"}).train.flip);
  // On, written or not, is today's training: the ids stay.
  CATCH_CHECK(ids(parse(kGrid, {"train.flip=true"})) == ids(parse(kGrid)));
  auto off = ids(parse(kGrid, {"train.flip=false"}));
  for (const auto& id : ids(parse(kGrid))) CATCH_CHECK(std::count(off.begin(), off.end(), id) == 0);
  CATCH_CHECK(load_error(kGrid, {"train.flip=1"}) ==
              "--set train.flip: key 'flip' for [train] must be a boolean");
}

CATCH_TEST_CASE("the resolved TOML writes each float in its shortest exact form") {
  // 0.333 is stored as the double nearest to it, which 17 digits print as 0.33300000000000002.
  Experiment e = parse(kGrid, {"setup.0.head.h=0.333"});
  CATCH_INFO(e.resolved_toml);
  CATCH_CHECK(contains(e.resolved_toml, "h = 0.333,"));
  CATCH_CHECK_FALSE(contains(e.resolved_toml, "0.33300000000000002"));
  CATCH_CHECK(contains(e.resolved_toml, "rho = [ 0.05, 0.1, 0.2 ]"));
  CATCH_CHECK(contains(e.resolved_toml, "s = 64.0"));  // a float stays a float
  // Awkward values read back bit for bit: each --set below is the shortest text of its double,
  // so the resolved TOML must carry exactly that text.
  const std::vector<std::pair<std::string, double>> awkward{
      {"0.1", 0.1},
      {"1e-300", 1e-300},
      {"5e-324", 5e-324},                          // the smallest subnormal
      {"0.3333333333333333", 1 / 3.0},             // 16 digits suffice for 1/3
      {"9007199254740993.0", 9007199254740992.0},  // 2^53 + 1 rounds to 2^53
      {"1e+22", 1e22},
      {"1.7976931348623157e+308", 1.7976931348623157e308},
  };
  for (const auto& [text, value] : awkward) {
    CATCH_INFO(text);
    Experiment a = parse(kGrid, {"setup.0.head.x=" + text});
    Experiment again = parse(a.resolved_toml);
    CATCH_CHECK(again.setups[0].head.options.get_double("x", 0) == value);
    CATCH_CHECK(again.resolved_toml == a.resolved_toml);  // a fixed point
  }
  CATCH_CHECK(contains(parse(kGrid, {"setup.0.head.x=5e-324"}).resolved_toml, "x = 5e-324"));
  CATCH_CHECK(contains(parse(kGrid, {"setup.0.head.x=9007199254740993.0"}).resolved_toml,
                       "x = 9007199254740992.0"));
  // A string that looks like the stand-in the writer uses is left alone.
  Experiment s = parse(kGrid, {"experiment.name=\"flatface-float-0\"", "setup.0.head.x=0.5"});
  CATCH_CHECK(contains(s.resolved_toml, "name = 'flatface-float-0'"));
  CATCH_CHECK(contains(s.resolved_toml, "x = 0.5"));
}
