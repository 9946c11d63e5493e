// The HDF5 result file of a run: round trip, atomic replacement, readability from h5py.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "catch_compat.hpp"
#include "flatface/options.hpp"
#include "results/result_store.hpp"
#include "run_records.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using flatface::RunRecord;
using flatface::RunState;
using flatface::testing::fresh_dir;
using flatface::testing::same;

namespace {

RunRecord sample_record(int epochs) {
  RunRecord r;
  r.attributes = {{"experiment", "casia-r50"},
                  {"setup", "FlatFace-SAM-ArcFace"},
                  {"head", "arcface s=64 m=0.5"},
                  {"perturbation", "sam"},
                  {"rho", "0.05"},
                  {"seed", "2"},
                  {"run_id", "ab12cd34"},
                  {"config_toml", "[experiment]\nname = \"casia-r50\"\n"}};
  r.benchmark_names = {"LFW", "CFP-FP"};
  for (int e = 1; e <= epochs; ++e) {
    flatface::EpochMetrics m;
    m.epoch = e;
    m.lr = 0.1 / e;
    m.loss = 10.0 - e;
    m.perturbation_loss = 0.5 * e;
    m.loss_perturbed = 10.5 - e;
    m.grad_norm = 3.0 + e;
    m.epsilon_norm = 0.05;
    m.train_accuracy = 0.1 * e;
    m.images_per_second = 1000.0 + e;
    m.wall_time = 60.0 * e;
    m.second_pass_fraction = 0.25 * e;
    m.benchmarks["LFW"] = {0.9 + 0.01 * e, 0.002, 1.4, 0.8};
    if (e % 2 == 0) m.benchmarks["CFP-FP"] = {0.8 + 0.01 * e, 0.003, 1.5, 0.6};
    r.epochs.push_back(m);
  }
  return r;
}

std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  std::array<char, 512> buf{};
  while (std::fgets(buf.data(), buf.size(), p)) out += buf.data();
  int rc = ::pclose(p);
  if (rc != 0) out += "\n<exit " + std::to_string(rc) + ">";
  return out;
}

}  // namespace

CATCH_TEST_CASE("a run record read back equals the one written") {
  auto dir = fresh_dir("roundtrip");
  RunRecord w = sample_record(3);
  w.status = RunState::failed;
  w.failure_reason = "non-finite loss at step 17";
  w.failed_step = 17;
  const std::string path = (dir / "run.h5").string();
  flatface::write_run_record(path, w);
  RunRecord r = flatface::read_run_record(path);

  CATCH_CHECK(r.attributes == w.attributes);
  CATCH_CHECK(r.status == RunState::failed);
  CATCH_CHECK(r.failure_reason == w.failure_reason);
  CATCH_CHECK(r.failed_step == 17);
  CATCH_CHECK(r.benchmark_names == w.benchmark_names);
  CATCH_REQUIRE(r.epochs.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& a = w.epochs[i];
    const auto& b = r.epochs[i];
    CATCH_CHECK(a.epoch == b.epoch);
    CATCH_CHECK(same(a.lr, b.lr));
    CATCH_CHECK(same(a.loss, b.loss));
    CATCH_CHECK(same(a.perturbation_loss, b.perturbation_loss));
    CATCH_CHECK(same(a.loss_perturbed, b.loss_perturbed));
    CATCH_CHECK(same(a.grad_norm, b.grad_norm));
    CATCH_CHECK(same(a.epsilon_norm, b.epsilon_norm));
    CATCH_CHECK(same(a.train_accuracy, b.train_accuracy));
    CATCH_CHECK(same(a.images_per_second, b.images_per_second));
    CATCH_CHECK(same(a.wall_time, b.wall_time));
    CATCH_CHECK(same(a.second_pass_fraction, b.second_pass_fraction));
    // CFP-FP is evaluated on even epochs only: absent, not zero, on the others.
    CATCH_REQUIRE(b.benchmarks.size() == a.benchmarks.size());
    for (const auto& [name, m] : a.benchmarks) {
      const auto& n = b.benchmarks.at(name);
      CATCH_CHECK(same(m.accuracy, n.accuracy));
      CATCH_CHECK(same(m.accuracy_std, n.accuracy_std));
      CATCH_CHECK(same(m.threshold, n.threshold));
      CATCH_CHECK(same(m.tar_at_far, n.tar_at_far));
    }
  }
  fs::remove_all(dir);
}

CATCH_TEST_CASE("rewriting a result file each epoch replaces it and leaves no temporary file") {
  auto dir = fresh_dir("rewrite");
  const std::string path = (dir / "run.h5").string();
  flatface::write_run_record(path, sample_record(1));
  flatface::write_run_record(path, sample_record(2));
  CATCH_CHECK(flatface::read_run_record(path).epochs.size() == 2);
  CATCH_CHECK_FALSE(fs::exists(flatface::temporary_path(path)));
  CATCH_CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
  fs::remove_all(dir);
}

CATCH_TEST_CASE(
    "listing a results folder returns the .h5 files sorted and ignores .tmp leftovers") {
  auto dir = fresh_dir("list");
  flatface::write_run_record((dir / "b.h5").string(), sample_record(1));
  flatface::write_run_record((dir / "a.h5").string(), sample_record(1));
  std::ofstream((dir / "c.h5.tmp").string()) << "half-written";
  std::ofstream(flatface::temporary_path((dir / "d.h5").string())) << "half-written";
  std::ofstream((dir / "notes.txt").string()) << "x";
  auto files = flatface::list_run_files(dir.string());
  CATCH_REQUIRE(files.size() == 2);
  CATCH_CHECK(fs::path(files[0]).filename() == "a.h5");
  CATCH_CHECK(fs::path(files[1]).filename() == "b.h5");
  CATCH_CHECK_THROWS_AS(flatface::list_run_files((dir / "missing").string()),
                        flatface::ConfigError);
  fs::remove_all(dir);
}

CATCH_TEST_CASE("a torn temporary file from a crashed write does not hide the last complete file") {
  auto dir = fresh_dir("torn");
  const std::string path = (dir / "run.h5").string();
  flatface::write_run_record(path, sample_record(2));
  std::ofstream(flatface::temporary_path(path)) << "\x89HDF\r\n";  // a kill during the next write
  CATCH_CHECK(flatface::read_run_record(path).epochs.size() == 2);
  flatface::write_run_record(path, sample_record(3));  // the next write goes through regardless
  CATCH_CHECK(flatface::read_run_record(path).epochs.size() == 3);
  fs::remove_all(dir);
}

CATCH_TEST_CASE("killing a writer with SIGKILL at an arbitrary moment leaves a complete file") {
  auto dir = fresh_dir("kill");
  const std::string path = (dir / "run.h5").string();
  // Several kills at different moments of the write cycle; each must leave a readable file.
  for (useconds_t delay : {7000u, 19000u, 31000u, 43000u, 61000u, 83000u}) {
    pid_t child = ::fork();
    CATCH_REQUIRE(child >= 0);
    if (child == 0) {
      try {
        for (int e = 1;; e = e % 40 + 1) flatface::write_run_record(path, sample_record(e));
      } catch (...) {
        ::_exit(1);
      }
    }
    while (!fs::exists(path)) ::usleep(1000);
    ::usleep(delay);
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    RunRecord r = flatface::read_run_record(path);
    CATCH_CHECK(r.epochs.size() >= 1);
    CATCH_CHECK(r.epochs.back().epoch == static_cast<std::int64_t>(r.epochs.size()));
  }
  fs::remove_all(dir);
}

CATCH_TEST_CASE("reading a missing or foreign file fails with a message naming the file") {
  auto dir = fresh_dir("errors");
  const std::string missing = (dir / "nope.h5").string();
  const std::string foreign = (dir / "foreign.h5").string();
  std::ofstream(foreign) << "not hdf5 at all";
  CATCH_CHECK_THROWS_WITH(flatface::read_run_record(missing), catch_compat::Contains(missing));
  CATCH_CHECK_THROWS_AS(flatface::read_run_record(foreign), flatface::RuntimeError);
  CATCH_CHECK_THROWS_WITH(flatface::read_run_record(foreign), catch_compat::Contains(foreign));
  fs::remove_all(dir);
}

CATCH_TEST_CASE("h5py reads the attributes, metrics and per-benchmark columns of a result file") {
  auto dir = fresh_dir("h5py");
  const std::string path = (dir / "run.h5").string();
  RunRecord w = sample_record(2);
  w.status = RunState::complete;
  flatface::write_run_record(path, w);
  const std::string script = (dir / "read.py").string();
  std::ofstream(script) << R"(import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
a = f.attrs
print("setup", a["setup"])
print("status", a["status"])
print("rho", float(a["rho_value"]), "seed", int(a["seed_value"]))
print("benchmarks", ",".join(str(x) for x in a["benchmark_names"]))
print("loss", " ".join("%g" % v for v in f["metrics/loss"][:]))
print("epochs", " ".join("%g" % v for v in f["metrics/epoch"][:]))
print("second_pass_fraction", " ".join("%g" % v for v in f["metrics/second_pass_fraction"][:]))
lens = {len(f["metrics"][k]) for k in f["metrics"]}
print("lengths", sorted(lens))
cfp = f["eval/CFP-FP/accuracy"][:]
print("cfp", "nan" if np.isnan(cfp[0]) else cfp[0], "%g" % cfp[1])
print("lfw", "%g" % f["eval/LFW/accuracy"][1])
)";
  std::string out = run_command(std::string(FLATFACE_PYTHON) + " " + script + " " + path + " 2>&1");
  CATCH_INFO(out);
  CATCH_CHECK(out.find("setup FlatFace-SAM-ArcFace\n") != std::string::npos);
  CATCH_CHECK(out.find("status complete\n") != std::string::npos);
  CATCH_CHECK(out.find("rho 0.05 seed 2\n") != std::string::npos);
  CATCH_CHECK(out.find("benchmarks LFW,CFP-FP\n") != std::string::npos);
  CATCH_CHECK(out.find("loss 9 8\n") != std::string::npos);
  CATCH_CHECK(out.find("epochs 1 2\n") != std::string::npos);
  CATCH_CHECK(out.find("second_pass_fraction 0.25 0.5\n") != std::string::npos);
  CATCH_CHECK(out.find("lengths [2]\n") != std::string::npos);
  CATCH_CHECK(out.find("cfp nan 0.82\n") != std::string::npos);
  CATCH_CHECK(out.find("lfw 0.92\n") != std::string::npos);
  fs::remove_all(dir);
}

CATCH_TEST_CASE("a result file written before second_pass_fraction existed reads it as NaN") {
  auto dir = fresh_dir("old");
  const std::string path = (dir / "run.h5").string();
  flatface::write_run_record(path, sample_record(2));
  const std::string script = (dir / "drop.py").string();
  std::ofstream(script)
      << "import sys, h5py\n"
         "with h5py.File(sys.argv[1], 'a') as f: del f['metrics/second_pass_fraction']\n";
  std::string out = run_command(std::string(FLATFACE_PYTHON) + " " + script + " " + path + " 2>&1");
  CATCH_INFO(out);
  RunRecord r = flatface::read_run_record(path);
  CATCH_REQUIRE(r.epochs.size() == 2);
  CATCH_CHECK(std::isnan(r.epochs[0].second_pass_fraction));
  CATCH_CHECK(r.epochs[1].loss == 8.0);
  fs::remove_all(dir);
}

CATCH_TEST_CASE("an analysis group of any shape and nesting reads back with its attributes") {
  auto dir = fresh_dir("analysis");
  const std::string path = (dir / "run.h5").string();
  RunRecord r = sample_record(2);
  r.status = RunState::complete;
  auto& a = r.analysis.arrays;
  a["trace/mean"] = {{}, {123.5}};                                   // a scalar
  a["hessian/eigenvalues"] = {{3}, {9.0, 4.0, 1.0}};                 // 1-D
  a["landscape/loss_2d"] = {{2, 3}, {1, 2, 3, 4, 5, 6}};             // 2-D, row-major
  a["line/abc/accuracy/LFW"] = {{2}, {0.5, 0.75}};                   // nested groups
  r.analysis.attributes[""] = {{"top_k", "3"}, {"settings", "top_k=3;"}};
  r.analysis.attributes["line/abc"] = {{"run_b", "abc"}};
  flatface::write_run_record(path, r);
  RunRecord back = flatface::read_run_record(path);
  CATCH_CHECK(back.epochs.size() == 2);
  CATCH_REQUIRE(back.analysis.arrays.size() == 4);
  for (const auto& [name, array] : a) {
    CATCH_CHECK(back.analysis.arrays.at(name).shape == array.shape);
    CATCH_CHECK(back.analysis.arrays.at(name).values == array.values);
  }
  CATCH_CHECK(back.analysis.attributes.at("").at("top_k") == "3");
  CATCH_CHECK(back.analysis.attributes.at("line/abc").at("run_b") == "abc");

  // A record without an analysis writes no /analysis group.
  flatface::write_run_record(path, sample_record(1));
  CATCH_CHECK(flatface::read_run_record(path).analysis.empty());
  // An array whose values do not fill its shape is refused, naming it; the old file stays.
  RunRecord bad = sample_record(1);
  bad.analysis.arrays["x"] = {{2, 2}, {1, 2, 3}};
  try {
    flatface::write_run_record(path, bad);
    CATCH_FAIL("no error");
  } catch (const flatface::RuntimeError& e) {
    CATCH_CHECK(std::string(e.what()).find("'x'") != std::string::npos);
  }
  CATCH_CHECK(flatface::read_run_record(path).epochs.size() == 1);
  fs::remove_all(dir);
}
