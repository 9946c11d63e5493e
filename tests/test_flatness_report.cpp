// `flatface report` on analysed runs: the flatness columns (mean ± std over seeds, Welch's test
// against the baseline), the CSV columns and the flatness figures, against numbers worked by hand.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "aggregate.hpp"
#include "catch_compat.hpp"
#include "cli_test_support.hpp"
#include "figures.hpp"
#include "report_tables.hpp"
#include "results/result_store.hpp"

using namespace flatface;
using namespace flatface::reports;
using catch_compat::Approx;
using catch_compat::Contains;

namespace {

// A complete run of one epoch (train accuracy, one benchmark) with an analysis.
RunRecord analysed_run(const std::string& setup, const std::string& perturbation, int seed,
                       double train, double lfw, double lambda, double trace, double sharpness,
                       const std::vector<double>& curve) {
  RunRecord r;
  r.attributes = {{"setup", setup},
                  {"head", "arcface"},
                  {"perturbation", perturbation},
                  {"rho", perturbation == "none" ? "" : "0.1"},
                  {"seed", std::to_string(seed)},
                  {"run_id", setup + std::to_string(seed)}};
  r.status = RunState::complete;
  r.benchmark_names = {"LFW"};
  EpochMetrics m;
  m.epoch = 1;
  m.train_accuracy = train;
  m.benchmarks["LFW"].accuracy = lfw;
  r.epochs.push_back(m);
  auto& a = r.analysis.arrays;
  a["hessian/eigenvalues"] = {{2}, {lambda, lambda / 2}};  // λ_max is the first
  a["trace/mean"] = {{}, {trace}};
  a["sharpness/worst_case"] = {{}, {sharpness}};
  a["sharpness/rho"] = {{}, {0.05}};
  a["landscape/alpha"] = {{3}, {-1, 0, 1}};
  a["landscape/loss_1d"] = {{3}, curve};
  a["landscape/alpha_2d"] = {{2}, {-1, 1}};
  a["landscape/beta_2d"] = {{2}, {-1, 1}};
  a["landscape/loss_2d"] = {{2, 2}, {1, 2, 3, 4.0 + seed}};
  return r;
}

// Baseline λ_max 10, 11, 12 (mean 11, sample std 1); SAM 8, 9, 10 (mean 9, std 1).
// Trace: 100, 110, 120 (mean 110, std 10) and 50, 60, 70. Sharpness 0.2, 0.3, 0.4 (mean 0.3,
// std 0.1) and 0.1, 0.1, 0.1 (std 0).
std::vector<std::pair<std::string, RunRecord>> records() {
  std::vector<std::pair<std::string, RunRecord>> rs;
  for (int s = 0; s < 3; ++s) {
    rs.emplace_back("b" + std::to_string(s) + ".h5",
                    analysed_run("ArcFace", "none", s, 1.0, 0.9, 10.0 + s, 100.0 + 10 * s,
                                 0.2 + 0.1 * s, {2.0 + s, 1.0, 3.0}));
    rs.emplace_back("s" + std::to_string(s) + ".h5",
                    analysed_run("SAM-ArcFace", "sam", s, 1.0, 0.95, 8.0 + s, 50.0 + 10 * s, 0.1,
                                 {1.5, 1.0, 1.5}));
  }
  return rs;
}

}  // namespace

CATCH_TEST_CASE("flatness measures are averaged over seeds per setup, as worked by hand") {
  Aggregate agg = aggregate_runs(records(), Selection::final_epoch);
  CATCH_REQUIRE(agg.groups.size() == 2);
  const Group& base = agg.groups[0];
  const Group& sam = agg.groups[1];
  CATCH_CHECK(base.setup == "ArcFace");
  CATCH_CHECK(base.flatness.at("lambda_max").mean == Approx(11.0));
  CATCH_CHECK(base.flatness.at("lambda_max").std == Approx(1.0));
  CATCH_CHECK(base.flatness.at("trace").mean == Approx(110.0));
  CATCH_CHECK(base.flatness.at("trace").std == Approx(10.0));
  CATCH_CHECK(base.flatness.at("sharpness").mean == Approx(0.3));
  CATCH_CHECK(sam.flatness.at("sharpness").std == Approx(0.0).margin(1e-15));
  CATCH_CHECK_FALSE(base.flatness.count("sharpness_adaptive"));  // not measured
  // λ_max: equal sizes and variances, t = (9 − 11)/√(1/3 + 1/3) = −√6, df = 4; Abramowitz &
  // Stegun 26.7.3 gives the two-sided p = 1 − sin θ (1 + cos²θ / 2), θ = atan(√6 / 2).
  const double th = std::atan(std::sqrt(6.0) / 2);
  CATCH_CHECK(sam.p_flatness.at("lambda_max") ==
              Approx(1 - std::sin(th) * (1 + std::cos(th) * std::cos(th) / 2)).epsilon(1e-10));
  CATCH_CHECK(base.p_flatness.empty());  // the baseline is not tested against itself
}

CATCH_TEST_CASE("the main table ends with the lambda_max, trace and sharpness columns") {
  Aggregate agg = aggregate_runs(records(), Selection::final_epoch);
  const std::string md = render_report(agg, Format::markdown);
  CATCH_INFO(md);
  std::istringstream lines(md);
  std::string header, rule, first;
  while (std::getline(lines, header) && header.rfind("| Setup", 0) != 0) {
  }
  std::getline(lines, rule);
  std::getline(lines, first);
  CATCH_CHECK_THAT(header, Contains("| λ_max | Trace | Sharpness |"));
  CATCH_CHECK(header.substr(header.size() - 13) == "| Sharpness |");
  CATCH_CHECK_THAT(first, Contains("| 11 ± 1 | 110 ± 10 | 0.3 ± 0.1 |"));
  // The flatness table follows, with p values against the baseline.
  CATCH_CHECK_THAT(md, Contains("Flatness of the training loss"));
  CATCH_CHECK_THAT(md, Contains("| 9 ± 1 |"));
  const std::string tex = render_report(agg, Format::latex);
  CATCH_CHECK_THAT(tex, Contains("$\\lambda_{\\max}$"));
  CATCH_CHECK_THAT(tex, Contains("11 $\\pm$ 1"));
}

CATCH_TEST_CASE("the CSV has mean, std and p columns for each flatness measure") {
  Aggregate agg = aggregate_runs(records(), Selection::final_epoch);
  std::istringstream csv(render_csv(agg));
  std::string header, base, sam;
  std::getline(csv, header);
  std::getline(csv, base);
  std::getline(csv, sam);
  CATCH_CHECK_THAT(header, Contains(",sharpness_rho,lambda_max_mean,lambda_max_std,p_lambda_max,"
                                    "trace_mean,trace_std,p_trace,sharpness_mean,sharpness_std,"
                                    "p_sharpness"));
  CATCH_CHECK_THAT(base, Contains(",0.05,11,1,,110,10,,0.3,0.1,"));
  CATCH_CHECK_THAT(sam, Contains(",0.05,9,1,"));
}

CATCH_TEST_CASE("the flatness figures plot sharpness against the gap and the landscapes") {
  flatface::testing::TempDir dir("flatness-figures");
  Aggregate agg = aggregate_runs(records(), Selection::final_epoch);
  FigureFiles figs = write_figures(agg, dir.str());
  auto written = [&](const std::string& name) {
    return std::find(figs.written.begin(), figs.written.end(), dir / name) != figs.written.end();
  };
  CATCH_CHECK(written("sharpness_gap.png"));
  CATCH_CHECK(written("landscape_1d.svg"));
  CATCH_CHECK(written("landscape_2d_ArcFace.png"));
  CATCH_CHECK(written("landscape_2d_SAM-ArcFace_rho_0.1.png"));
  auto read = [&](const std::string& name) {
    std::ifstream in(dir / name);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  };
  // Gap of the baseline runs: 100 − 90 = 10 percentage points, against sharpness 0.2, 0.3, 0.4.
  const std::string scatter = read("sharpness_gap.dat");
  CATCH_CHECK_THAT(scatter, Contains("0.2 10  # seed 0"));
  CATCH_CHECK_THAT(scatter, Contains("0.4 10  # seed 2"));
  // At α = −1 the baseline's losses are 2, 3, 4: mean 3, std 1, so the band is 2..4.
  const std::string curves = read("landscape_1d.dat");
  CATCH_CHECK_THAT(curves, Contains("-1 3 2 4\n0 1 1 1\n1 3 3 3\n"));
  // The 2-D mean over seeds: corner (1, 1) is 4, 5, 6 → 5.
  CATCH_CHECK_THAT(read("landscape_2d_ArcFace.dat"), Contains("1 1 5\n"));
}
