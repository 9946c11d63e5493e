// `flatface analyze` and the [analysis] table of `flatface run` on a tiny grid (synthetic faces,
// a narrow IResNet-small): what lands under /analysis in the result files, skipping and --force,
// the line between two checkpoints, and errors that name what is wrong.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "catch_compat.hpp"
#include "cli_test_support.hpp"
#include "results/result_store.hpp"
#include "tiny_grid.hpp"

namespace fs = std::filesystem;
using namespace flatface::testing;
using catch_compat::Contains;

namespace {

// Two setups of one epoch, each run then measured by small [analysis] settings.
std::string analyze_grid() {
  TinyGrid g;
  g.name = "analyze-cli";
  g.threads.reset();
  g.output = "out";
  g.train = R"({ plugin = "synthetic", identities = 4, images_per_identity = 6, seed = 0 })";
  g.eval = {R"({ name = "Pairs", plugin = "synthetic", identities = 4, images_per_identity = 4, )"
            R"(seed = 1, pairs = 20, verification_identities = 4 })"};
  g.batch_size = 8;
  g.train_keys = {"log_every_steps = 0"};
  g.setups = {{"ArcFace", R"({ plugin = "arcface", s = 16.0, m = 0.3 })"},
              {"SAM-ArcFace", R"({ plugin = "arcface", s = 16.0, m = 0.3 })",
               R"({ plugin = "sam", rho = 0.07 })"}};
  g.extra_tables =
      "[analysis]\nbatches = 1\nmax_iterations = 5\ntrace_samples = 3\nascent_steps = 2\n"
      "average_samples = 2\nlandscape_points = 3\n";
  return tiny_grid(g);
}

const std::string kExperiment = analyze_grid();

Result in(const TempDir& dir, const std::string& args) {
  return run_cli("--threads 1 " + args, "cd '" + dir.str() + "' &&");
}

// The grid trained once (with its [analysis]) and shared by the test cases.
struct Grid {
  TempDir dir{"analyze-cli"};
  std::string file;
  Grid() {
    file = dir.write("grid.toml", kExperiment);
    Result r = in(dir, "run grid.toml --no-report");
    if (r.code != 0) throw std::runtime_error("training the grid failed:\n" + r.out);
  }
  std::vector<std::string> results() const { return flatface::list_run_files(dir / "out"); }
  std::string checkpoint(const std::string& result) const {
    return (fs::path(dir / "out") / "checkpoints" / (fs::path(result).stem().string() + ".ckpt"))
        .string();
  }
  std::string result_of(const std::string& setup) const {
    for (const auto& f : results())
      if (flatface::read_run_record(f).attributes.at("setup") == setup) return f;
    throw std::logic_error("no run of " + setup);
  }
};

const Grid& grid() {
  static Grid g;
  return g;
}

}  // namespace

CATCH_TEST_CASE("flatface run with [analysis] writes the measures under /analysis of every run") {
  const auto files = grid().results();
  CATCH_REQUIRE(files.size() == 2);
  for (const auto& f : files) {
    const auto rec = flatface::read_run_record(f);
    CATCH_CHECK(rec.status == flatface::RunState::complete);
    const auto& a = rec.analysis.arrays;
    CATCH_REQUIRE(a.count("hessian/eigenvalues"));
    CATCH_CHECK(a.at("hessian/eigenvalues").shape == std::vector<std::uint64_t>{1});
    CATCH_CHECK(a.at("hessian/iterations").values[0] <= 5);
    CATCH_CHECK(a.at("trace/samples").values[0] <= 3);
    CATCH_CHECK(a.at("trace/mean").shape.empty());
    CATCH_CHECK(std::isfinite(a.at("sharpness/worst_case").values[0]));
    CATCH_CHECK(a.count("sharpness/worst_case_adaptive"));
    CATCH_CHECK(a.count("sharpness/average_case"));
    CATCH_CHECK(a.at("landscape/alpha").values == std::vector<double>{-1, 0, 1});
    // The landscape at α = 0 is L(w), the same loss the sharpness starts from.
    CATCH_CHECK(a.at("landscape/loss_1d").values[1] ==
                catch_compat::Approx(a.at("sharpness/loss").values[0]).epsilon(1e-6));
    const auto& attrs = rec.analysis.attributes.at("");
    CATCH_CHECK(attrs.at("batches") == "1");
    CATCH_CHECK(attrs.at("max_iterations") == "5");
    // ρ is the run's own where it has one.
    const double rho = a.at("sharpness/rho").values[0];
    CATCH_CHECK(rho == (rec.attributes.at("setup") == "SAM-ArcFace" ? 0.07 : 0.05));
    // The training results are still there.
    CATCH_CHECK(rec.epochs.size() == 1);
  }
}

CATCH_TEST_CASE("flatface analyze skips runs analysed with the same settings, redoes with new ones") {
  const Grid& g = grid();
  Result same = in(g.dir, "analyze out");
  CATCH_CHECK(same.code == 0);
  CATCH_CHECK_THAT(same.out, Contains("0 analysed, 2 skipped"));

  const std::string one = g.results()[0];
  Result other = in(g.dir, "analyze '" + g.checkpoint(one) +
                               "' --settings '{ batches = 1, top_k = 2, max_iterations = 3, "
                               "trace_samples = 0, average_samples = 0, landscape_points = 0, "
                               "adaptive = false, rho = 0.2 }'");
  CATCH_CHECK(other.code == 0);
  CATCH_CHECK_THAT(other.out, Contains("1 analysed, 0 skipped"));
  const auto rec = flatface::read_run_record(one);
  CATCH_CHECK(rec.analysis.arrays.at("hessian/eigenvalues").values.size() == 2);
  CATCH_CHECK(rec.analysis.arrays.at("sharpness/rho").values[0] == 0.2);
  CATCH_CHECK_FALSE(rec.analysis.arrays.count("trace/mean"));  // this analysis did not ask
  CATCH_CHECK(rec.analysis.attributes.at("").at("top_k") == "2");

  Result forced = in(g.dir, "analyze out --force --settings '{ batches = 1, top_k = 1, "
                            "max_iterations = 2, trace_samples = 2, landscape_points = 3 }'");
  CATCH_CHECK(forced.code == 0);
  CATCH_CHECK_THAT(forced.out, Contains("2 analysed, 0 skipped"));
}

CATCH_TEST_CASE("flatface analyze --pair writes the line between two checkpoints to the first") {
  const Grid& g = grid();
  const std::string a = g.result_of("ArcFace"), b = g.result_of("SAM-ArcFace");
  Result r = in(g.dir, "analyze --pair '" + g.checkpoint(a) + "' '" + g.checkpoint(b) +
                           "' --points 3 --range 0,1 --accuracy");
  CATCH_REQUIRE(r.code == 0);
  const auto rec = flatface::read_run_record(a);
  const auto& arrays = rec.analysis.arrays;
  const std::string id_b = fs::path(b).stem().string();
  CATCH_REQUIRE(arrays.count("line/" + id_b + "/loss"));
  CATCH_CHECK(arrays.at("line/" + id_b + "/t").values == std::vector<double>{0, 0.5, 1});
  CATCH_CHECK(arrays.at("line/" + id_b + "/accuracy/Pairs").values.size() == 3);
  // At t = 0 the line is A itself: its loss on the same batches, as the analysis measured it.
  Result again = in(g.dir, "analyze '" + g.checkpoint(a) + "' --force");
  CATCH_CHECK(again.code == 0);
  const auto rec2 = flatface::read_run_record(a);
  CATCH_CHECK(rec2.analysis.arrays.at("line/" + id_b + "/loss").values[0] ==
              catch_compat::Approx(rec2.analysis.arrays.at("sharpness/loss").values[0]).epsilon(1e-6));
  // At t = 1 the accuracy is B's own: its final benchmark accuracy in its result file.
  const auto rec_b = flatface::read_run_record(b);
  CATCH_CHECK(rec2.analysis.arrays.at("line/" + id_b + "/accuracy/Pairs").values[2] ==
              catch_compat::Approx(rec_b.epochs.back().benchmarks.at("Pairs").accuracy)
                  .margin(1e-9));
}

CATCH_TEST_CASE("h5py reads the analysis group of a result file") {
  const Grid& g = grid();
  const std::string f = g.results()[0];
  Result r = shell(std::string(FLATFACE_PYTHON) + " -c \"import h5py; f = h5py.File('" + f +
                   "', 'r'); print('lambda', f['analysis/hessian/eigenvalues'][0] > -1e9, "
                   "f['analysis'].attrs['batches'])\"");
  if (r.code != 0 && contains(r.out, "No module named")) {
    CATCH_WARN("h5py not available: " << r.out);
    return;
  }
  CATCH_CHECK(r.code == 0);
  CATCH_CHECK_THAT(r.out, Contains("lambda True 1"));
}

CATCH_TEST_CASE("flatface analyze names a missing checkpoint and an unknown settings key") {
  const Grid& g = grid();
  Result missing = in(g.dir, "analyze out/checkpoints/nope.ckpt");
  CATCH_CHECK(missing.code == 2);
  CATCH_CHECK_THAT(missing.out, Contains("nope.ckpt"));

  Result typo = in(g.dir, "analyze out --settings '{ top_kk = 2 }'");
  CATCH_CHECK(typo.code == 2);
  CATCH_CHECK_THAT(typo.out, Contains("top_kk"));

  const std::string bad = g.dir.write(
      "bad.toml", with(kExperiment, "trace_samples = 3", "trace_sample = 3"));
  Result table = in(g.dir, "validate bad.toml");
  CATCH_CHECK(table.code == 2);
  CATCH_CHECK_THAT(table.out, Contains("trace_sample"));
  CATCH_CHECK_THAT(table.out, Contains("[analysis]"));
}
