// `flatface report`: aggregation over seeds, tables, Welch's test and figures, checked against
// numbers worked out by hand (or by an independent computation in Python).
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "aggregate.hpp"
#include "catch_compat.hpp"
#include "experiment/experiment.hpp"
#include "figures.hpp"
#include "report_tables.hpp"
#include "results/result_store.hpp"
#include "test_support.hpp"
#include "welch.hpp"

namespace fs = std::filesystem;
using namespace flatface;
using namespace flatface::reports;
using catch_compat::Approx;
using flatface::testing::contains;
using flatface::testing::fresh_dir;

namespace {

struct EpochSpec {
  double train;
  std::vector<std::pair<std::string, double>> acc;  // in column order
};

// A result record as the trainer writes it.
RunRecord make_run(const std::string& setup, const std::string& perturbation,
                   const std::string& rho, int seed, const std::vector<EpochSpec>& epochs,
                   const std::string& head = "arcface s=64 m=0.5") {
  RunRecord r;
  r.attributes = {{"setup", setup},
                  {"head", head},
                  {"perturbation", perturbation},
                  {"rho", rho},
                  {"seed", std::to_string(seed)},
                  {"run_id", setup + "-" + rho + "-" + std::to_string(seed)}};
  r.status = RunState::complete;
  for (std::size_t i = 0; i < epochs.size(); ++i) {
    EpochMetrics m;
    m.epoch = static_cast<std::int64_t>(i + 1);
    m.train_accuracy = epochs[i].train;
    for (const auto& [name, acc] : epochs[i].acc) {
      m.benchmarks[name].accuracy = acc;
      if (std::find(r.benchmark_names.begin(), r.benchmark_names.end(), name) ==
          r.benchmark_names.end())
        r.benchmark_names.push_back(name);
    }
    r.epochs.push_back(m);
  }
  return r;
}

using Records = std::vector<std::pair<std::string, RunRecord>>;

void add(Records& rs, RunRecord r) {
  rs.emplace_back(r.attributes["run_id"] + ".h5", std::move(r));
}

// The hand-worked example: 3 seeds of one setup.
//   LFW 0.990 0.992 0.994       -> mean 99.20 %, sample std 0.20 %
//   CFP-FP 0.962 0.966 0.970    -> mean 96.60 %, sample std 0.40 %
//   per-run Average 0.976 0.979 0.982 -> mean 97.90 %, sample std 0.30 %
//   train 0.990 0.995 1.000     -> mean 99.50 %, sample std 0.50 %
//   gap 0.014 0.016 0.018       -> mean 1.60 pp, sample std 0.20 pp
Records hand_example() {
  Records rs;
  const double lfw[] = {0.990, 0.992, 0.994}, cfp[] = {0.962, 0.966, 0.970},
               train[] = {0.990, 0.995, 1.000};
  for (int s = 0; s < 3; ++s)
    add(rs,
        make_run("ArcFace", "none", "", s, {{train[s], {{"LFW", lfw[s]}, {"CFP-FP", cfp[s]}}}}));
  return rs;
}

std::string run_command(const std::string& cmd, int* exit_code = nullptr) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  std::array<char, 1024> buf{};
  while (std::fgets(buf.data(), buf.size(), p)) out += buf.data();
  int rc = ::pclose(p);
  if (exit_code) *exit_code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return out;
}

// The Markdown line of the row that starts with `label`.
std::string row_of(const std::string& text, const std::string& label) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("| " + label + " |", 0) == 0 || line.rfind(label + " &", 0) == 0) return line;
  return "";
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

}  // namespace

CATCH_TEST_CASE("mean and sample standard deviation over seeds match the values worked by hand") {
  Aggregate agg = aggregate_runs(hand_example(), Selection::final_epoch);
  CATCH_REQUIRE(agg.groups.size() == 1);
  const Group& g = agg.groups[0];
  CATCH_CHECK(g.runs.size() == 3);
  CATCH_CHECK(g.accuracy.at("LFW").mean == Approx(0.992).epsilon(1e-12));
  CATCH_CHECK(g.accuracy.at("LFW").std == Approx(0.002).epsilon(1e-9));
  CATCH_CHECK(g.accuracy.at("CFP-FP").mean == Approx(0.966).epsilon(1e-12));
  CATCH_CHECK(g.accuracy.at("CFP-FP").std == Approx(0.004).epsilon(1e-9));
  CATCH_CHECK(g.average.mean == Approx(0.979).epsilon(1e-12));
  CATCH_CHECK(g.average.std == Approx(0.003).epsilon(1e-9));
  CATCH_CHECK(g.train_accuracy.mean == Approx(0.995).epsilon(1e-12));
  CATCH_CHECK(g.train_accuracy.std == Approx(0.005).epsilon(1e-9));
  CATCH_CHECK(g.gap.mean == Approx(0.016).epsilon(1e-9));
  CATCH_CHECK(g.gap.std == Approx(0.002).epsilon(1e-7));
}

CATCH_TEST_CASE("the Markdown table shows percent with two decimals and says what std means") {
  std::string md =
      render_report(aggregate_runs(hand_example(), Selection::final_epoch), Format::markdown);
  CATCH_INFO(md);
  CATCH_CHECK(row_of(md, "ArcFace").find("99.20 ± 0.20") != std::string::npos);
  CATCH_CHECK(row_of(md, "ArcFace").find("96.60 ± 0.40") != std::string::npos);
  CATCH_CHECK(row_of(md, "ArcFace").find("97.90 ± 0.30") != std::string::npos);
  CATCH_CHECK(md.find("| Setup | LFW | CFP-FP | Average |") != std::string::npos);
  CATCH_CHECK(md.find("sample standard deviation (n − 1)") != std::string::npos);
  CATCH_CHECK(md.find("at the final epoch") != std::string::npos);
  CATCH_CHECK(md.find("n = 3 seeds per row") != std::string::npos);
  // The gap table: train 99.50 ± 0.50, gap 1.60 ± 0.20.
  CATCH_CHECK(md.find("| ArcFace | 99.50 ± 0.50 | 97.90 ± 0.30 | 1.60 ± 0.20 |") !=
              std::string::npos);
}

CATCH_TEST_CASE(
    "the final epoch is reported by default; best picks each run's best epoch and warns") {
  Records rs;
  // Seed 0 peaks at epoch 1 (average 0.95), seed 1 improves to epoch 2 (0.97).
  add(rs, make_run("S", "none", "", 0,
                   {{0.5, {{"LFW", 0.96}, {"CFP-FP", 0.94}}},
                    {0.6, {{"LFW", 0.93}, {"CFP-FP", 0.91}}}}));
  add(rs, make_run("S", "none", "", 1,
                   {{0.5, {{"LFW", 0.90}, {"CFP-FP", 0.90}}},
                    {0.7, {{"LFW", 0.98}, {"CFP-FP", 0.96}}}}));
  Aggregate final_agg = aggregate_runs(rs, Selection::final_epoch);
  // final: averages 0.92 and 0.97 -> mean 0.945; train 0.6, 0.7.
  CATCH_CHECK(final_agg.groups[0].average.mean == Approx(0.945));
  CATCH_CHECK(final_agg.groups[0].train_accuracy.mean == Approx(0.65));
  Aggregate best_agg = aggregate_runs(rs, Selection::best_epoch);
  // best: epoch 1 of seed 0 (0.95, train 0.5), epoch 2 of seed 1 (0.97, train 0.7).
  CATCH_CHECK(best_agg.groups[0].runs[0].selected_epoch == 1);
  CATCH_CHECK(best_agg.groups[0].runs[1].selected_epoch == 2);
  CATCH_CHECK(best_agg.groups[0].average.mean == Approx(0.96));
  CATCH_CHECK(best_agg.groups[0].train_accuracy.mean == Approx(0.6));
  std::string md = render_report(best_agg, Format::markdown);
  CATCH_CHECK(md.find("Warning:") != std::string::npos);
  CATCH_CHECK(md.find("selects on the test sets") != std::string::npos);
  CATCH_CHECK(render_report(final_agg, Format::markdown).find("Warning:") == std::string::npos);
  CATCH_CHECK(render_report(best_agg, Format::latex).find("selects on the test sets") !=
              std::string::npos);
}

CATCH_TEST_CASE("bold marks the best mean of each column in Markdown and LaTeX") {
  Records rs;
  // A: LFW 99.50, CFP 90.00, Average 94.75.  B: LFW 99.00, CFP 95.00, Average 97.00.
  for (int s = 0; s < 2; ++s) {
    add(rs, make_run("A", "none", "", s, {{1.0, {{"LFW", 0.995}, {"CFP-FP", 0.90}}}}));
    add(rs, make_run("B", "sam", "0.1", s, {{1.0, {{"LFW", 0.990}, {"CFP-FP", 0.95}}}}));
  }
  Aggregate agg = aggregate_runs(rs, Selection::final_epoch);
  std::string md = render_report(agg, Format::markdown);
  CATCH_INFO(md);
  std::string a = row_of(md, "A"), b = row_of(md, "B");
  CATCH_CHECK(a.find("**99.50 ± 0.00**") != std::string::npos);
  CATCH_CHECK(a.find("| 90.00 ± 0.00 |") != std::string::npos);
  CATCH_CHECK(b.find("| 99.00 ± 0.00 |") != std::string::npos);
  CATCH_CHECK(b.find("**95.00 ± 0.00**") != std::string::npos);
  CATCH_CHECK(b.find("**97.00 ± 0.00**") != std::string::npos);
  CATCH_CHECK(a.find("**94.75") == std::string::npos);

  std::string tex = render_report(agg, Format::latex);
  CATCH_INFO(tex);
  std::string ta = row_of(tex, "A"), tb = row_of(tex, "B");
  CATCH_CHECK(ta.find("\\textbf{99.50 $\\pm$ 0.00}") != std::string::npos);
  CATCH_CHECK(ta.find("& 90.00 $\\pm$ 0.00 &") != std::string::npos);
  CATCH_CHECK(tb.find("\\textbf{95.00 $\\pm$ 0.00}") != std::string::npos);
  CATCH_CHECK(tb.find("\\textbf{97.00 $\\pm$ 0.00}") != std::string::npos);
}

CATCH_TEST_CASE("the LaTeX output is balanced booktabs tables with one cell per column") {
  Records rs = hand_example();
  for (int s = 0; s < 3; ++s)
    for (const char* rho : {"0.05", "0.1"})
      add(rs, make_run("SAM_x", "sam", rho, s,
                       {{0.99, {{"LFW", 0.99}, {"CFP-FP", 0.96 + 0.001 * s}}}}));
  std::string tex = render_report(aggregate_runs(rs, Selection::final_epoch), Format::latex);
  CATCH_INFO(tex);
  auto non_ascii = std::find_if(tex.begin(), tex.end(),
                                [](char c) { return static_cast<unsigned char>(c) >= 128; });
  CATCH_CHECK(non_ascii == tex.end());  // pdflatex-safe without extra packages
  auto count = [&](const std::string& s) {
    std::size_t n = 0;
    for (auto p = tex.find(s); p != std::string::npos; p = tex.find(s, p + 1)) ++n;
    return n;
  };
  CATCH_CHECK(count("\\begin{table}") == 3);  // main, gap, rho sweep
  CATCH_CHECK(count("\\end{table}") == 3);
  CATCH_CHECK(count("\\begin{tabular}") == 3);
  CATCH_CHECK(count("\\end{tabular}") == 3);
  CATCH_CHECK(count("{") == count("}"));
  CATCH_CHECK(tex.find("SAM\\_x") != std::string::npos);

  std::istringstream in(tex);
  std::string line;
  std::size_t columns = 0;
  std::string state = "outside";
  std::regex spec(R"(^\\begin\{tabular\}\{([lcr]+)\}$)");
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, spec)) {
      CATCH_CHECK(state == "outside");
      columns = m[1].str().size();
      state = "opened";
    } else if (line == "\\toprule") {
      CATCH_CHECK(state == "opened");
      state = "header";
    } else if (line == "\\midrule") {
      CATCH_CHECK(state == "header");
      state = "body";
    } else if (line == "\\bottomrule") {
      CATCH_CHECK(state == "body");
      state = "closing";
    } else if (line == "\\end{tabular}") {
      CATCH_CHECK(state == "closing");
      state = "outside";
    } else if (state == "header" || state == "body") {
      CATCH_CHECK(line.size() > 3);
      CATCH_CHECK(line.substr(line.size() - 3) == " \\\\");
      std::size_t amps = 0;
      for (std::size_t i = 0; i < line.size(); ++i)
        if (line[i] == '&' && (i == 0 || line[i - 1] != '\\')) ++amps;
      CATCH_CHECK(amps + 1 == columns);
    }
  }
  CATCH_CHECK(state == "outside");
}

CATCH_TEST_CASE("a failed or unfinished run is listed under the table and not averaged") {
  Records rs = hand_example();
  RunRecord failed = make_run("ArcFace", "none", "", 3, {{0.2, {{"LFW", 0.5}, {"CFP-FP", 0.5}}}});
  failed.status = RunState::failed;
  failed.failure_reason = "non-finite loss";
  failed.failed_step = 17;
  add(rs, failed);
  RunRecord running = make_run("ArcFace", "none", "", 4, {{0.2, {{"LFW", 0.6}, {"CFP-FP", 0.6}}}});
  running.status = RunState::running;
  add(rs, running);
  Aggregate agg = aggregate_runs(rs, Selection::final_epoch);
  CATCH_REQUIRE(agg.groups.size() == 1);
  CATCH_CHECK(agg.groups[0].runs.size() == 3);
  CATCH_CHECK(agg.groups[0].average.mean == Approx(0.979).epsilon(1e-12));
  CATCH_CHECK(agg.not_averaged.size() == 2);
  std::string md = render_report(agg, Format::markdown);
  CATCH_INFO(md);
  auto table_end = md.find("\n\n", md.find("| ArcFace |"));
  auto listed =
      md.find("ArcFace seed 3 (run ArcFace--3): failed at step 17: non-finite loss (1 epoch done)");
  CATCH_CHECK(md.find("Not averaged") != std::string::npos);
  CATCH_CHECK(listed != std::string::npos);
  CATCH_CHECK(listed > table_end);
  CATCH_CHECK(md.find("seed 4 (run ArcFace--4): running (1 epoch done)") != std::string::npos);
  auto notes = notes_for_stderr(agg);
  CATCH_CHECK(notes.size() == 2);
}

CATCH_TEST_CASE("the number of seeds per row is shown only when it differs between rows") {
  Records rs = hand_example();
  CATCH_CHECK(render_report(aggregate_runs(rs, Selection::final_epoch), Format::markdown)
                  .find("| Setup | n |") == std::string::npos);
  for (int s = 0; s < 2; ++s)
    add(rs, make_run("Other", "none", "", s, {{1.0, {{"LFW", 0.9}, {"CFP-FP", 0.9}}}},
                     "adaface m=0.4"));
  std::string md = render_report(aggregate_runs(rs, Selection::final_epoch), Format::markdown);
  CATCH_INFO(md);
  CATCH_CHECK(md.find("| Setup | n | LFW |") != std::string::npos);
  CATCH_CHECK(row_of(md, "ArcFace").rfind("| ArcFace | 3 |", 0) == 0);
  CATCH_CHECK(row_of(md, "Other").rfind("| Other | 2 |", 0) == 0);
}

CATCH_TEST_CASE("rows follow the order of the setups in the stored experiment file") {
  const std::string written =
      "[experiment]\nname = \"x\"\n[data]\ntrain = { plugin = \"synthetic\" }\n"
      "[model]\nbackbone = { plugin = \"tiny\" }\n"
      "[[setup]]\nname = \"Zeta\"\nhead = { plugin = \"arcface\" }\n"
      "[[setup]]\nname = \"Alpha\"\nhead = { plugin = \"arcface\" }\n";
  // As written by hand (double quotes), and as the trainer stores it: the resolved TOML, which
  // toml++ writes with single-quoted strings.
  const std::string resolved = parse_experiment(written, "x.toml").resolved_toml;
  CATCH_REQUIRE(resolved.find("name = 'Zeta'") != std::string::npos);
  for (const std::string& toml : {written, resolved}) {
    Records rs;
    for (const char* name : {"Alpha", "Zeta"}) {
      RunRecord r = make_run(name, "none", "", 0, {{1.0, {{"LFW", 0.9}}}});
      r.attributes["config_toml"] = toml;
      add(rs, r);
    }
    Aggregate agg = aggregate_runs(rs, Selection::final_epoch);
    CATCH_REQUIRE(agg.groups.size() == 2);
    CATCH_CHECK(agg.groups[0].setup == "Zeta");
    CATCH_CHECK(agg.groups[1].setup == "Alpha");
  }
}

CATCH_TEST_CASE("Welch's test equals Student's t closed form when sizes and variances are equal") {
  // a = {1,2,3}, b = {3,4,5}: means 2 and 4, both variances 1, n = 3.
  // t = (2 - 4) / sqrt(1/3 + 1/3) = -sqrt(6); df = (2/3)^2 / (2 (1/3)^2 / 2) = 4.
  WelchResult r = welch_t_test({1, 2, 3}, {3, 4, 5});
  CATCH_CHECK(r.t == Approx(-std::sqrt(6.0)).epsilon(1e-12));
  CATCH_CHECK(r.df == Approx(4.0).epsilon(1e-12));
  // Abramowitz & Stegun 26.7.3, nu = 4: A(t|4) = sin(th) (1 + cos^2(th) / 2), th = atan(|t|/2);
  // the two-sided p-value is 1 - A.
  double th = std::atan(std::sqrt(6.0) / 2);
  double p = 1 - std::sin(th) * (1 + std::cos(th) * std::cos(th) / 2);
  CATCH_CHECK(r.p == Approx(p).epsilon(1e-10));
  CATCH_CHECK(welch_t_test({3, 4, 5}, {1, 2, 3}).p == Approx(p).epsilon(1e-10));  // two-sided
  CATCH_CHECK(std::isnan(welch_t_test({1}, {3, 4, 5}).p));  // one seed: no variance estimate
  CATCH_CHECK(std::isnan(welch_t_test({1, 1}, {2, 2}).p));  // both variances zero
}

CATCH_TEST_CASE("Welch's p-value for unequal variances matches a numerical integration in Python") {
  // a: mean 0.96, variance 1e-4; b: mean 0.95, variance 4e-4 (n = 3 each).
  // t = 0.01 / sqrt(5e-4 / 3) = 0.7745967; df = (5e-4/3)^2 / ((1e-4/3)^2/2 + (4e-4/3)^2/2) = 50/17.
  WelchResult r = welch_t_test({0.95, 0.96, 0.97}, {0.93, 0.95, 0.97});
  CATCH_CHECK(r.t == Approx(0.01 / std::sqrt(5e-4 / 3)).epsilon(1e-9));
  CATCH_CHECK(r.df == Approx(50.0 / 17.0).epsilon(1e-9));
  // p = 2 * integral_{|t|}^{inf} of the t density, by Simpson's rule after x = tan(u).
  auto dir = fresh_dir("welch");
  std::ofstream(dir / "p.py") << R"(import math
t, nu = 0.01 / math.sqrt(5e-4 / 3), 50.0 / 17.0
c = math.exp(math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2)) / math.sqrt(nu * math.pi)
f = lambda u: c * (1 + math.tan(u) ** 2 / nu) ** (-(nu + 1) / 2) / math.cos(u) ** 2
a, b, n = math.atan(t), math.pi / 2, 200000
h = (b - a) / n
s = f(a) + sum((4 if k % 2 else 2) * f(a + k * h) for k in range(1, n))  # f(pi/2) = 0 for nu > 1
print("%.15f" % (2 * s * h / 3))
)";
  std::string out = run_command(std::string(FLATFACE_PYTHON) + " " + (dir / "p.py").string());
  CATCH_INFO(out);
  CATCH_REQUIRE(!out.empty());
  CATCH_CHECK(r.p == Approx(std::stod(out)).epsilon(1e-8));
  fs::remove_all(dir);
}

CATCH_TEST_CASE("p vs baseline compares each setup with the unperturbed setup of the same head") {
  Records rs;
  const double arc[] = {0.950, 0.952, 0.954}, sam[] = {0.960, 0.957, 0.966},
               ada[] = {0.940, 0.945, 0.941}, sam_ada[] = {0.949, 0.950, 0.955};
  for (int s = 0; s < 3; ++s) {
    add(rs, make_run("ArcFace", "none", "", s, {{1, {{"LFW", arc[s]}}}}, "arcface s=64 m=0.5"));
    add(rs, make_run("SAM-ArcFace", "sam rho=0.1", "0.1", s, {{1, {{"LFW", sam[s]}}}},
                     "arcface s=64 m=0.5"));
    add(rs, make_run("AdaFace", "{ plugin = \"none\" }", "", s, {{1, {{"LFW", ada[s]}}}},
                     "adaface m=0.4"));
    add(rs, make_run("SAM-AdaFace", "{ plugin = \"sam\", rho = 0.05 }", "0.05", s,
                     {{1, {{"LFW", sam_ada[s]}}}}, "adaface m=0.4"));
  }
  Aggregate agg = aggregate_runs(rs, Selection::final_epoch);
  std::map<std::string, const Group*> by;
  for (const auto& g : agg.groups) by[g.setup] = &g;
  CATCH_REQUIRE(by.size() == 4);
  CATCH_CHECK(by["SAM-ArcFace"]->baseline == "ArcFace");
  CATCH_CHECK(by["SAM-AdaFace"]->baseline == "AdaFace");
  CATCH_CHECK(by["ArcFace"]->baseline.empty());
  CATCH_CHECK(std::isnan(by["ArcFace"]->p_vs_baseline));
  CATCH_CHECK(by["SAM-ArcFace"]->p_vs_baseline ==
              Approx(welch_t_test({0.960, 0.957, 0.966}, {0.950, 0.952, 0.954}).p));
  CATCH_CHECK(by["SAM-AdaFace"]->p_vs_baseline ==
              Approx(welch_t_test({0.949, 0.950, 0.955}, {0.940, 0.945, 0.941}).p));
  std::string md = render_report(agg, Format::markdown);
  CATCH_INFO(md);
  CATCH_CHECK(md.find("| p vs baseline |") != std::string::npos);
  char p[32];
  std::snprintf(p, sizeof p, "| %.3f |", by["SAM-ArcFace"]->p_vs_baseline);
  CATCH_CHECK(row_of(md, "SAM-ArcFace").find(p) != std::string::npos);
}

CATCH_TEST_CASE(
    "the CSV has one row per setup and rho with plain mean and std numbers in percent") {
  std::string csv =
      render_report(aggregate_runs(hand_example(), Selection::final_epoch), Format::csv);
  CATCH_INFO(csv);
  auto lines = split(csv, '\n');
  CATCH_REQUIRE(lines.size() >= 2);
  auto header = split(lines[0], ','), row = split(lines[1], ',');
  CATCH_REQUIRE(header.size() == row.size());
  std::map<std::string, std::string> cell;
  for (std::size_t i = 0; i < header.size(); ++i) cell[header[i]] = row[i];
  CATCH_CHECK(cell["setup"] == "ArcFace");
  CATCH_CHECK(cell["n_seeds"] == "3");
  CATCH_CHECK(std::stod(cell["LFW_mean"]) == Approx(99.2).epsilon(1e-9));
  CATCH_CHECK(std::stod(cell["LFW_std"]) == Approx(0.2).epsilon(1e-6));
  CATCH_CHECK(std::stod(cell["CFP-FP_std"]) == Approx(0.4).epsilon(1e-6));
  CATCH_CHECK(std::stod(cell["average_mean"]) == Approx(97.9).epsilon(1e-9));
  CATCH_CHECK(std::stod(cell["gap_mean"]) == Approx(1.6).epsilon(1e-6));
  CATCH_CHECK(cell["selection"] == "final");
}

namespace {

Records rho_sweep() {
  // Setup S at rho 0.05 / 0.1 / 0.2 with averages 95.0 / 96.0 / 94.0 (two seeds, +-0.1).
  Records rs;
  const std::pair<const char*, double> points[] = {{"0.05", 0.95}, {"0.1", 0.96}, {"0.2", 0.94}};
  for (const auto& [rho, acc] : points)
    for (int s = 0; s < 2; ++s)
      add(rs, make_run("S", "sam", rho, s, {{0.99, {{"LFW", acc + (s ? 0.001 : -0.001)}}}}));
  for (int s = 0; s < 2; ++s) add(rs, make_run("Base", "none", "", s, {{0.99, {{"LFW", 0.93}}}}));
  return rs;
}

}  // namespace

CATCH_TEST_CASE("the rho sweep table marks the best rho of each swept setup") {
  Aggregate agg = aggregate_runs(rho_sweep(), Selection::final_epoch);
  auto views = sweep_views(agg);
  CATCH_REQUIRE(views.size() == 1);
  CATCH_CHECK(views[0].key == "rho");
  CATCH_REQUIRE(views[0].series.size() == 1);
  CATCH_CHECK(views[0].series[0].label == "S");
  std::string md = render_markdown(sweep_table(agg, views[0]));
  CATCH_INFO(md);
  CATCH_CHECK(md.find("| Setup | ρ = 0.05 | ρ = 0.1 | ρ = 0.2 | Best ρ |") != std::string::npos);
  CATCH_CHECK(row_of(md, "S") == "| S | 95.00 ± 0.14 | **96.00 ± 0.14** | 94.00 ± 0.14 | 0.1 |");
  CATCH_CHECK(render_report(agg, Format::markdown).find("ρ sweep") != std::string::npos);
  CATCH_CHECK(
      render_report(aggregate_runs(hand_example(), Selection::final_epoch), Format::markdown)
          .find("ρ sweep") == std::string::npos);
}

CATCH_TEST_CASE("figures are gnuplot-drawn PNG and SVG files with their data and scripts") {
  auto dir = fresh_dir("figures");
  Records rs = rho_sweep();
  FigureFiles figs = write_figures(aggregate_runs(rs, Selection::final_epoch), dir.string());
  CATCH_CHECK(figs.written.size() == 4);
  for (const char* name : {"gap", "rho_sweep"}) {
    for (const char* ext : {".dat", ".gp"})
      CATCH_CHECK(fs::exists(dir / (std::string(name) + ext)));
    std::ifstream png(dir / (std::string(name) + ".png"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(png)), std::istreambuf_iterator<char>());
    CATCH_REQUIRE(bytes.size() > 33);
    CATCH_CHECK(bytes.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
    CATCH_CHECK(bytes.substr(12, 4) == "IHDR");
    auto be32 = [&](std::size_t at) {
      return (static_cast<unsigned char>(bytes[at]) << 24) |
             (static_cast<unsigned char>(bytes[at + 1]) << 16) |
             (static_cast<unsigned char>(bytes[at + 2]) << 8) |
             static_cast<unsigned char>(bytes[at + 3]);
    };
    CATCH_CHECK(be32(8) == 13);    // IHDR length
    CATCH_CHECK(be32(16) == 960);  // width as set in the script
    CATCH_CHECK(be32(20) == 560);
    // The SVG parses as XML with an <svg> root.
    std::string svg = (dir / (std::string(name) + ".svg")).string();
    std::string out = run_command(std::string(FLATFACE_PYTHON) +
                                  " -c \"import sys, xml.etree.ElementTree as E; "
                                  "print(E.parse(sys.argv[1]).getroot().tag)\" " +
                                  svg + " 2>&1");
    CATCH_INFO(out);
    CATCH_CHECK(out == "{http://www.w3.org/2000/svg}svg\n");
  }
  // No swept setup: only the gap figure.
  auto only_gap = fresh_dir("figures_gap");
  FigureFiles g =
      write_figures(aggregate_runs(hand_example(), Selection::final_epoch), only_gap.string());
  CATCH_CHECK(g.written.size() == 2);
  CATCH_CHECK(g.skipped.size() == 1);
  CATCH_CHECK_FALSE(fs::exists(only_gap / "rho_sweep.png"));
  fs::remove_all(dir);
  fs::remove_all(only_gap);
}

CATCH_TEST_CASE("flatface report reads a results folder and prints the table, figures on request") {
  auto dir = fresh_dir("cli");
  auto results = dir / "results";
  fs::create_directories(results);
  for (auto& [name, rec] : hand_example()) write_run_record((results / name).string(), rec);
  std::ofstream((results / "partial.h5.tmp").string()) << "torn";  // a killed write: ignored
  RunRecord failed = make_run("ArcFace", "none", "", 9, {});
  failed.status = RunState::failed;
  failed.failure_reason = "out of memory";
  write_run_record((results / "failed.h5").string(), failed);

  int rc = -1;
  std::string cli = FLATFACE_CLI;
  std::string md = run_command(cli + " report " + results.string() + " 2>&1", &rc);
  CATCH_INFO(md);
  CATCH_CHECK(rc == 0);
  CATCH_CHECK(row_of(md, "ArcFace").find("99.20 ± 0.20") != std::string::npos);
  CATCH_CHECK(md.find("seed 9 (run ArcFace--9): failed: out of memory (0 epochs done)") !=
              std::string::npos);

  std::string csv_path = (dir / "t.csv").string();
  std::string log = run_command(cli + " report " + results.string() + " --format csv --out " +
                                    csv_path + " --figures " + (dir / "figs").string() + " 2>&1",
                                &rc);
  CATCH_INFO(log);
  CATCH_CHECK(rc == 0);
  std::ifstream csv(csv_path);
  std::string header;
  std::getline(csv, header);
  CATCH_CHECK(header.rfind("setup,rho,n_seeds,LFW_mean,LFW_std,", 0) == 0);
  CATCH_CHECK(fs::exists(dir / "figs" / "gap.png"));
  CATCH_CHECK(fs::exists(dir / "figs" / "gap.svg"));
  CATCH_CHECK(log.find("not averaged:") != std::string::npos);  // CSV: listed on stderr

  run_command(cli + " report " + (dir / "missing").string() + " 2>&1", &rc);
  CATCH_CHECK(rc == 2);
  run_command(cli + " report " + results.string() + " --format docx 2>&1", &rc);
  CATCH_CHECK(rc == 2);
  fs::remove_all(dir);
}

namespace {

// The margin ablation: ArcFace and SAM-ArcFace at m = 0.3 and 0.5, two seeds, as the trainer
// records a sweep of head.m (a sweep.head.m attribute and the margin inside `head`).
//   ArcFace     m=0.3: LFW 0.950 0.952 -> 95.10    m=0.5: 0.960 0.962 -> 96.10
//   SAM-ArcFace m=0.3: LFW 0.955 0.959 -> 95.70    m=0.5: 0.970 0.972 -> 97.10
Records margin_sweep() {
  Records rs;
  const struct {
    const char* setup;
    const char* perturbation;
    const char* m;
    double lfw[2];
  } rows[] = {{"ArcFace", "none", "0.3", {0.950, 0.952}},
              {"ArcFace", "none", "0.5", {0.960, 0.962}},
              {"SAM-ArcFace", "sam", "0.3", {0.955, 0.959}},
              {"SAM-ArcFace", "sam", "0.5", {0.970, 0.972}}};
  for (const auto& row : rows)
    for (int s = 0; s < 2; ++s) {
      const std::string rho = row.perturbation == std::string("sam") ? "0.1" : "";
      RunRecord r = make_run(row.setup, row.perturbation, rho, s, {{0.99, {{"LFW", row.lfw[s]}}}},
                             std::string("arcface{m=") + row.m + ",plugin=\"arcface\",s=64}");
      r.attributes["sweep.head.m"] = row.m;
      r.attributes["run_id"] += std::string("-m") + row.m;
      add(rs, std::move(r));
    }
  return rs;
}

}  // namespace

CATCH_TEST_CASE("rows are grouped by every swept value and labelled with them") {
  Aggregate agg = aggregate_runs(margin_sweep(), Selection::final_epoch);
  CATCH_REQUIRE(agg.groups.size() == 4);
  std::vector<std::string> labels;
  for (const auto& g : agg.groups) labels.push_back(g.label());
  CATCH_CHECK(labels == std::vector<std::string>{"ArcFace head.m=0.3", "ArcFace head.m=0.5",
                                                 "SAM-ArcFace head.m=0.3",
                                                 "SAM-ArcFace head.m=0.5"});
  // Each SAM row is compared with the baseline of its own margin.
  CATCH_CHECK(agg.groups[2].baseline == "ArcFace");
  CATCH_CHECK(agg.groups[2].p_vs_baseline ==
              Approx(welch_t_test(agg.groups[2].averages(), agg.groups[0].averages()).p));
  CATCH_CHECK(agg.groups[3].p_vs_baseline ==
              Approx(welch_t_test(agg.groups[3].averages(), agg.groups[1].averages()).p));
  std::string md = render_report(agg, Format::markdown);
  CATCH_INFO(md);
  // 95.10 +- 0.14: mean of 0.950 and 0.952, sample std 0.002 / sqrt(2) = 0.0014 (in percent).
  CATCH_CHECK(row_of(md, "ArcFace head.m=0.3") ==
              "| ArcFace head.m=0.3 | – | 95.10 ± 0.14 | 95.10 ± 0.14 | – |");
  CATCH_CHECK(contains(row_of(md, "SAM-ArcFace head.m=0.5"), "97.10 ± 0.14"));

  // The sweep table: one row per setup, a column per margin, the best margin marked.
  auto views = sweep_views(agg);
  CATCH_REQUIRE(views.size() == 1);
  CATCH_CHECK(views[0].key == "head.m");
  std::string sweep = render_markdown(sweep_table(agg, views[0]));
  CATCH_INFO(sweep);
  CATCH_CHECK(contains(sweep, "| Setup | head.m = 0.3 | head.m = 0.5 | Best head.m |"));
  CATCH_CHECK(row_of(sweep, "ArcFace") == "| ArcFace | 95.10 ± 0.14 | **96.10 ± 0.14** | 0.5 |");
  CATCH_CHECK(row_of(sweep, "SAM-ArcFace ρ=0.1") ==
              "| SAM-ArcFace ρ=0.1 | 95.70 ± 0.28 | **97.10 ± 0.14** | 0.5 |");
  CATCH_CHECK(contains(md, "head.m sweep"));

  // CSV: a column for the swept key.
  auto lines = split(render_report(agg, Format::csv), '\n');
  CATCH_CHECK(lines[0].rfind("setup,rho,head.m,n_seeds,LFW_mean,", 0) == 0);
  CATCH_CHECK(lines[1].rfind("ArcFace,,0.3,2,95.1", 0) == 0);
}

CATCH_TEST_CASE("the sweep figure of a swept option has that option on its x-axis") {
  auto dir = fresh_dir("sweep_figure");
  FigureFiles figs =
      write_figures(aggregate_runs(margin_sweep(), Selection::final_epoch), dir.string());
  CATCH_CHECK(figs.skipped.empty());
  CATCH_REQUIRE(fs::exists(dir / "sweep_head.m.png"));
  CATCH_CHECK(fs::exists(dir / "sweep_head.m.svg"));
  CATCH_CHECK_FALSE(fs::exists(dir / "rho_sweep.png"));  // one rho per setup: no rho sweep
  std::ifstream gp(dir / "sweep_head.m.gp");
  std::string script((std::istreambuf_iterator<char>(gp)), std::istreambuf_iterator<char>());
  CATCH_CHECK(contains(script, "set xlabel \"head.m\""));
  CATCH_CHECK_FALSE(contains(script, "logscale"));  // 0.3 to 0.5: a linear axis
  std::ifstream dat(dir / "sweep_head.m.dat");
  std::string data((std::istreambuf_iterator<char>(dat)), std::istreambuf_iterator<char>());
  CATCH_CHECK(contains(data, "# ArcFace\n0.3 95.1 0.141421\n0.5 96.1 0.141421\n"));
  fs::remove_all(dir);
}
