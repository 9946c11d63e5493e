#include "report_tables.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

#include "flatface/options.hpp"
#include "experiment/number_text.hpp"

namespace flatface::reports {
namespace {

const char* kDash = "–";  // en dash: no value

std::string fixed2(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

// "99.39 ± 0.05" from fractions, in percent with two decimals like the paper.
Cell percent_cell(const MeanStd& m) {
  if (std::isnan(m.mean)) return {kDash, "--", false};
  std::string mean = fixed2(100 * m.mean);
  std::string sd = std::isnan(m.std) ? kDash : fixed2(100 * m.std);
  std::string sd_tex = std::isnan(m.std) ? "--" : sd;
  return {mean + " ± " + sd, mean + " $\\pm$ " + sd_tex, false};
}

// Displayed value in hundredths of a percent: ties at the shown precision are all bold.
long long shown(double fraction) {
  return std::llround(fraction * 1e4);
}

// Marks the best mean of column `col` over `rows` (the highest, or lowest when `lower`).
void bold_best(std::vector<std::vector<Cell>>& rows, std::size_t col,
               const std::vector<double>& means, bool lower = false) {
  bool any = false;
  long long best = 0;
  for (double m : means) {
    if (std::isnan(m)) continue;
    long long s = shown(m);
    if (!any || (lower ? s < best : s > best)) best = s;
    any = true;
  }
  if (!any || means.size() < 2) return;
  for (std::size_t i = 0; i < means.size(); ++i)
    if (!std::isnan(means[i]) && shown(means[i]) == best) rows[i][col].bold = true;
}

// Three significant digits: flatness measures span orders of magnitude.
std::string sig3(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// "41.2 ± 3.1" in the measure's own units.
Cell measure_cell(const MeanStd& m) {
  if (m.n == 0 || std::isnan(m.mean)) return {kDash, "--", false};
  std::string sd = std::isnan(m.std) ? kDash : sig3(m.std);
  std::string sd_tex = std::isnan(m.std) ? "--" : sd;
  return {sig3(m.mean) + " ± " + sd, sig3(m.mean) + " $\\pm$ " + sd_tex, false};
}

Cell measure_cell(const Group& g, const std::string& key) {
  auto it = g.flatness.find(key);
  return it == g.flatness.end() ? Cell{kDash, "--", false} : measure_cell(it->second);
}

std::string rho_text(const std::string& rho, double value) {
  if (std::isnan(value)) return rho.empty() || rho == "-" ? kDash : rho;
  return shortest_text(value);
}

Cell rho_cell(const Group& g) {
  std::string t = rho_text(g.rho, g.rho_value);
  return {t, t == kDash ? "--" : latex_escape(t), false};
}

std::string p_text(double p) {
  if (std::isnan(p)) return kDash;
  if (p < 0.001) return "<0.001";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", p);
  return buf;
}

std::string epoch_phrase(Selection s) {
  return s == Selection::best_epoch
             ? "at the epoch with the best average benchmark accuracy of each run"
             : "at the final epoch of each run";
}

std::string best_warning() {
  return "--select best reports, for each run, the epoch with the best average benchmark "
         "accuracy: it selects on the test sets, so these numbers are optimistically biased.";
}

// Columns shared by every per-group table: Setup, rho (when any), n (when it varies).
void add_group_header(const Aggregate& agg, Table& t) {
  t.header.push_back({"Setup", "", false});
  t.numeric.push_back(false);
  if (agg.has_rho()) {
    t.header.push_back({"ρ", "$\\rho$", false});
    t.numeric.push_back(true);
  }
  if (!agg.same_seed_count()) {
    t.header.push_back({"n", "$n$", false});
    t.numeric.push_back(true);
  }
}

std::vector<Cell> group_cells(const Aggregate& agg, const Group& g) {
  std::vector<Cell> row{{g.label(), "", false}};
  if (agg.has_rho()) row.push_back(rho_cell(g));
  if (!agg.same_seed_count()) row.push_back({std::to_string(g.runs.size()), "", false});
  return row;
}

void add_common_notes(const Aggregate& agg, Table& t) {
  if (agg.selection == Selection::best_epoch) t.warnings.push_back(best_warning());
  if (agg.same_seed_count() && !agg.groups.empty())
    t.notes.push_back(
        {"n = " + std::to_string(agg.groups.front().runs.size()) + " seeds per row.", "", false});
  for (const auto& r : agg.not_averaged)
    t.unaveraged.push_back({describe_unaveraged(r), "", false});
  for (const auto& m : agg.missing) t.missing.push_back({describe_missing(m), "", false});
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string csv_number(double v, double scale = 1) {
  if (std::isnan(v)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v * scale);
  return buf;
}

}  // namespace

Format parse_format(const std::string& text) {
  if (text == "md" || text == "markdown") return Format::markdown;
  if (text == "latex" || text == "tex") return Format::latex;
  if (text == "csv") return Format::csv;
  throw ConfigError("--format: expected md, latex or csv, got '" + text + "'");
}

std::string describe_unaveraged(const RunResult& r) {
  std::ostringstream s;
  s << (r.setup.empty() ? "(no setup)" : r.setup);
  if (!std::isnan(r.rho_value)) s << " rho=" << rho_text(r.rho, r.rho_value);
  if (const std::string swept = swept_text(r.swept); !swept.empty()) s << ' ' << swept;
  if (!r.seed.empty()) s << " seed " << r.seed;
  s << " (run " << r.run_id << "): " << to_string(r.status);
  if (r.failed_step >= 0) s << " at step " << r.failed_step;
  if (!r.failure_reason.empty()) s << ": " << r.failure_reason;
  s << " (" << r.epochs_done << (r.epochs_done == 1 ? " epoch" : " epochs") << " done)";
  return s.str();
}

std::string describe_missing(const MissingRuns& m) {
  std::ostringstream s;
  s << m.setup;
  if (!m.rho.empty()) s << " rho=" << m.rho;
  if (!m.swept.empty()) s << ' ' << m.swept;
  s << (m.seeds.size() == 1 ? ": seed " : ": seeds ");
  for (std::size_t i = 0; i < m.seeds.size(); ++i) s << (i ? ", " : "") << m.seeds[i];
  s << (m.run_ids.size() == 1 ? " (run " : " (runs ");
  for (std::size_t i = 0; i < m.run_ids.size(); ++i) s << (i ? ", " : "") << m.run_ids[i];
  s << ")";
  return s.str();
}

bool has_any_flatness(const Aggregate& agg) {
  for (const auto& m : kFlatnessMeasures)
    if (agg.has_flatness(m.key)) return true;
  return false;
}

Table main_table(const Aggregate& agg) {
  Table t;
  t.caption = "Verification accuracy (%), mean ± std over seeds";
  t.caption_latex = "Verification accuracy (\\%), mean $\\pm$ std over seeds";
  add_group_header(agg, t);
  for (const auto& b : agg.benchmarks) {
    t.header.push_back({b, "", false});
    t.numeric.push_back(true);
  }
  t.header.push_back({"Average", "", false});
  t.numeric.push_back(true);
  bool with_p = std::any_of(agg.groups.begin(), agg.groups.end(),
                            [](const Group& g) { return !g.baseline.empty(); });
  if (with_p) {
    t.header.push_back({"p vs baseline", "$p$ vs baseline", false});
    t.numeric.push_back(true);
  }

  std::size_t first = t.header.size() - agg.benchmarks.size() - 1 - (with_p ? 1 : 0);
  bool flatness = false;
  for (const auto& m : kFlatnessMeasures) {
    if (!m.main || !agg.has_flatness(m.key)) continue;
    t.header.push_back({m.label, m.latex, false});
    t.numeric.push_back(true);
    flatness = true;
  }
  for (const auto& g : agg.groups) {
    auto row = group_cells(agg, g);
    for (const auto& b : agg.benchmarks) row.push_back(percent_cell(g.accuracy.at(b)));
    row.push_back(percent_cell(g.average));
    if (with_p) {
      std::string p = p_text(g.p_vs_baseline);
      row.push_back({p, p == kDash ? "--" : (p == "<0.001" ? "$<$0.001" : p), false});
    }
    for (const auto& m : kFlatnessMeasures)
      if (m.main && agg.has_flatness(m.key)) row.push_back(measure_cell(g, m.key));
    t.rows.push_back(row);
  }
  for (std::size_t k = 0; k <= agg.benchmarks.size(); ++k) {
    std::vector<double> means;
    for (const auto& g : agg.groups)
      means.push_back(k < agg.benchmarks.size() ? g.accuracy.at(agg.benchmarks[k]).mean
                                                : g.average.mean);
    bold_best(t.rows, first + k, means);
  }

  t.notes.push_back({"Accuracy " + epoch_phrase(agg.selection) +
                         "; mean ± std over seeds, where std is the sample standard deviation "
                         "(n − 1). Average: mean over the benchmarks per run, then over seeds.",
                     "Accuracy " + latex_escape(epoch_phrase(agg.selection)) +
                         "; mean $\\pm$ std over seeds, where std is the sample standard "
                         "deviation ($n-1$). Average: mean over the benchmarks per run, then over "
                         "seeds.",
                     false});
  t.notes.push_back({"Bold: the best mean of each column.", "", false});
  if (flatness)
    t.notes.push_back(
        {"λ_max, Trace, Sharpness: flatface analyze on the training loss (largest Hessian "
         "eigenvalue, Hutchinson trace, worst-case rise of the loss in a ρ-ball; the flatness "
         "table says more). Lower is flatter.",
         "$\\lambda_{\\max}$, Trace, Sharpness: \\texttt{flatface analyze} on the training loss "
         "(largest Hessian eigenvalue, Hutchinson trace, worst-case rise of the loss in a "
         "$\\rho$-ball; the flatness table says more). Lower is flatter.",
         false});
  if (with_p)
    t.notes.push_back(
        {"p vs baseline: two-sided Welch's t-test (Welch–Satterthwaite df) of the per-seed Average "
         "against the setup with the same head and no perturbation.",
         "$p$ vs baseline: two-sided Welch's $t$-test (Welch--Satterthwaite df) of the per-seed "
         "Average against the setup with the same head and no perturbation.",
         false});
  add_common_notes(agg, t);
  return t;
}

bool has_train_accuracy(const Aggregate& agg) {
  return std::any_of(agg.groups.begin(), agg.groups.end(),
                     [](const Group& g) { return !std::isnan(g.train_accuracy.mean); });
}

Table gap_table(const Aggregate& agg) {
  Table t;
  t.caption = "Generalization gap: training accuracy − average benchmark accuracy";
  t.caption_latex = "Generalization gap: training accuracy $-$ average benchmark accuracy";
  add_group_header(agg, t);
  std::size_t first = t.header.size();
  for (const char* h : {"Train acc", "Average", "Gap"}) {
    t.header.push_back({h, "", false});
    t.numeric.push_back(true);
  }
  std::vector<double> gaps;
  for (const auto& g : agg.groups) {
    auto row = group_cells(agg, g);
    row.push_back(percent_cell(g.train_accuracy));
    row.push_back(percent_cell(g.average));
    row.push_back(percent_cell(g.gap));
    t.rows.push_back(row);
    gaps.push_back(g.gap.mean);
  }
  bold_best(t.rows, first + 2, gaps, /*lower=*/true);
  t.notes.push_back(
      {"Gap = training accuracy − average benchmark accuracy per run (percentage "
       "points), then mean ± std over seeds (sample std, n − 1), " +
           epoch_phrase(agg.selection) + ". Bold: the smallest gap.",
       "Gap = training accuracy $-$ average benchmark accuracy per run (percentage "
       "points), then mean $\\pm$ std over seeds (sample std, $n-1$), " +
           latex_escape(epoch_phrase(agg.selection)) + ". Bold: the smallest gap.",
       false});
  if (agg.selection == Selection::best_epoch) t.warnings.push_back(best_warning());
  return t;
}

Table flatness_table(const Aggregate& agg) {
  Table t;
  t.caption = "Flatness of the training loss at the final weights, mean ± std over seeds";
  t.caption_latex = "Flatness of the training loss at the final weights, mean $\\pm$ std over seeds";
  add_group_header(agg, t);
  const bool with_p = std::any_of(agg.groups.begin(), agg.groups.end(),
                                  [](const Group& g) { return !g.baseline.empty(); });
  t.header.push_back({"ρ (sharpness)", "$\\rho$ (sharpness)", false});
  t.numeric.push_back(true);
  std::vector<const FlatnessMeasure*> shown;
  for (const auto& m : kFlatnessMeasures) {
    if (!agg.has_flatness(m.key)) continue;
    shown.push_back(&m);
    t.header.push_back({m.label, m.latex, false});
    t.numeric.push_back(true);
    if (with_p) {
      t.header.push_back({"p", "$p$", false});
      t.numeric.push_back(true);
    }
  }
  for (const auto& g : agg.groups) {
    auto row = group_cells(agg, g);
    const MeanStd& rho = g.sharpness_rho;
    std::string rho_shown = rho.n == 0 ? kDash : sig3(rho.mean);
    // Three runs at 0.05 have a std of ~1e-17 from rounding in the mean: not a different ρ.
    if (rho.n > 1 && rho.std > 1e-9 * std::abs(rho.mean)) rho_shown += " (varies)";
    row.push_back({rho_shown, rho_shown == kDash ? "--" : "", false});
    for (const auto* m : shown) {
      row.push_back(measure_cell(g, m->key));
      if (with_p) {
        auto it = g.p_flatness.find(m->key);
        std::string p = p_text(it == g.p_flatness.end() ? NAN : it->second);
        row.push_back({p, p == kDash ? "--" : (p == "<0.001" ? "$<$0.001" : p), false});
      }
    }
    t.rows.push_back(row);
  }
  t.notes.push_back(
      {"L_margin over backbone and class weights on fixed training batches (flatface analyze). "
       "λ_max: largest Hessian eigenvalue (power iteration); Trace: Hutchinson's estimate; "
       "Sharpness: max L(w+δ) − L(w) over ‖δ‖₂ ≤ ρ by projected gradient ascent (a lower bound); "
       "Adaptive: the same over ‖δ/(|w|+η)‖₂ ≤ ρ (ASAM); Average: E L(w+δ) − L(w) for "
       "δ ~ N(0, ρ²/d I). Mean ± std over the analysed seeds (sample std, n − 1).",
       "$L_\\mathrm{margin}$ over backbone and class weights on fixed training batches "
       "(\\texttt{flatface analyze}). $\\lambda_{\\max}$: largest Hessian eigenvalue (power "
       "iteration); Trace: Hutchinson's estimate; Sharpness: $\\max_{\\|\\delta\\|_2\\le\\rho} "
       "L(w+\\delta)-L(w)$ by projected gradient ascent (a lower bound); Adaptive: the same over "
       "$\\|\\delta/(|w|+\\eta)\\|_2\\le\\rho$ (ASAM); Average: $E\\,L(w+\\delta)-L(w)$ for "
       "$\\delta\\sim N(0,\\rho^2/d\\,I)$. Mean $\\pm$ std over the analysed seeds (sample std, "
       "$n-1$).",
       false});
  if (with_p)
    t.notes.push_back({"p: two-sided Welch's t-test of the per-seed values against the setup with "
                       "the same head and no perturbation.",
                       "$p$: two-sided Welch's $t$-test of the per-seed values against the setup "
                       "with the same head and no perturbation.",
                       false});
  std::set<std::string> radii;
  for (const auto& g : agg.groups)
    if (g.sharpness_rho.n > 0) radii.insert(sig3(g.sharpness_rho.mean));
  if (radii.size() > 1)
    t.warnings.push_back(
        "The sharpness columns use different ρ in different rows (each run's own ρ by default): "
        "compare rows with the same ρ, or analyse with one ρ for all (--settings '{ rho = 0.05 }').");
  return t;
}

std::vector<SweepView> sweep_views(const Aggregate& agg) {
  std::set<std::string> keys;
  for (const auto& g : agg.groups)
    for (const auto& [key, value] : g.swept)
      if (key != "perturbation.rho") keys.insert(key);
  std::vector<std::string> order{"rho"};
  order.insert(order.end(), keys.begin(), keys.end());
  std::vector<SweepView> views;
  for (const auto& key : order) {
    SweepView view{key, {}, {}};
    std::map<std::string, std::size_t> at;  // series label -> index
    for (const auto& g : agg.groups) {
      const double v = key == "rho" ? g.rho_value : swept_number(g.swept, key);
      if (std::isnan(v)) continue;
      // The row's label without this key's value (rho is not in labels).
      auto others = g.swept;
      others.erase(key);
      std::string label = g.setup;
      if (const std::string rest = swept_text(others); !rest.empty()) label += " " + rest;
      if (key != "rho" && !std::isnan(g.rho_value)) label += " ρ=" + rho_text(g.rho, g.rho_value);
      auto [it, fresh] = at.emplace(label, view.series.size());
      if (fresh) view.series.push_back({label, {}});
      view.series[it->second].by_value[v] = &g;
    }
    view.series.erase(std::remove_if(view.series.begin(), view.series.end(),
                                     [](const SweepSeries& s) { return s.by_value.size() < 2; }),
                      view.series.end());
    for (const auto& s : view.series)
      for (const auto& [v, g] : s.by_value) view.values.insert(v);
    if (!view.series.empty()) views.push_back(std::move(view));
  }
  return views;
}

std::string sweep_symbol(const SweepView& view) {
  return view.key == "rho" ? "ρ" : view.key;
}

Table sweep_table(const Aggregate& agg, const SweepView& view) {
  const std::string sym = sweep_symbol(view);
  const std::string sym_tex =
      view.key == "rho" ? "$\\rho$" : "\\texttt{" + latex_escape(view.key) + "}";
  Table t;
  t.caption = sym + " sweep: average accuracy (%) per setup and " + sym;
  t.caption_latex = sym_tex + " sweep: average accuracy (\\%) per setup and " + sym_tex;
  t.header.push_back({"Setup", "", false});
  t.numeric.push_back(false);
  for (double v : view.values) {
    const std::string s = shortest_text(v);
    t.header.push_back({sym + " = " + s, sym_tex + " $= " + s + "$", false});
    t.numeric.push_back(true);
  }
  t.header.push_back({"Best " + sym, "Best " + sym_tex, false});
  t.numeric.push_back(true);
  for (const auto& series : view.series) {
    std::vector<Cell> row{{series.label, "", false}};
    std::vector<double> means;
    for (double v : view.values) {
      auto it = series.by_value.find(v);
      const Group* found = it == series.by_value.end() ? nullptr : it->second;
      row.push_back(found ? percent_cell(found->average) : Cell{"", "", false});
      means.push_back(found ? found->average.mean : NAN);
    }
    // The best value of this series: the highest mean Average (first one on a tie).
    std::size_t best = means.size();
    for (std::size_t i = 0; i < means.size(); ++i)
      if (!std::isnan(means[i]) && (best == means.size() || means[i] > means[best])) best = i;
    std::string best_value =
        best < means.size() ? shortest_text(*std::next(view.values.begin(), best)) : "";
    for (std::size_t i = 0; i < means.size(); ++i)
      if (best < means.size() && !std::isnan(means[i]) && shown(means[i]) == shown(means[best]))
        row[1 + i].bold = true;
    row.push_back({best_value, "", false});
    t.rows.push_back(row);
  }
  t.notes.push_back(
      {"Average accuracy over the benchmarks, mean ± std over seeds (sample std, "
       "n − 1), " +
           epoch_phrase(agg.selection) + ". Bold: the best " + sym + " of each row.",
       "Average accuracy over the benchmarks, mean $\\pm$ std over seeds (sample "
       "std, $n-1$), " +
           latex_escape(epoch_phrase(agg.selection)) + ". Bold: the best " + sym_tex +
           " of each row.",
       false});
  if (agg.selection == Selection::best_epoch) t.warnings.push_back(best_warning());
  return t;
}

std::string render_csv(const Aggregate& agg) {
  std::ostringstream out;
  std::set<std::string> swept;  // a column per swept option (rho has its own)
  for (const auto& g : agg.groups)
    for (const auto& [key, value] : g.swept)
      if (key != "perturbation.rho") swept.insert(key);
  out << "setup,rho";
  for (const auto& key : swept) out << ',' << csv_field(key);
  out << ",n_seeds";
  for (const auto& b : agg.benchmarks)
    out << ',' << csv_field(b + "_mean") << ',' << csv_field(b + "_std");
  out << ",average_mean,average_std,train_accuracy_mean,train_accuracy_std,gap_mean,gap_std,"
         "baseline,p_vs_baseline,selection";
  std::vector<const FlatnessMeasure*> measures;
  for (const auto& m : kFlatnessMeasures)
    if (agg.has_flatness(m.key)) measures.push_back(&m);
  if (!measures.empty()) out << ",sharpness_rho";
  for (const auto* m : measures)
    out << ',' << m->key << "_mean," << m->key << "_std,p_" << m->key;
  out << '\n';
  for (const auto& g : agg.groups) {
    out << csv_field(g.setup) << ',' << csv_number(g.rho_value);
    for (const auto& key : swept) {
      auto it = g.swept.find(key);
      out << ',' << csv_field(it == g.swept.end() ? "" : it->second);
    }
    out << ',' << g.runs.size();
    auto pair = [&](const MeanStd& m) {
      out << ',' << csv_number(m.mean, 100) << ',' << csv_number(m.std, 100);
    };
    for (const auto& b : agg.benchmarks) pair(g.accuracy.at(b));
    pair(g.average);
    pair(g.train_accuracy);
    pair(g.gap);
    out << ',' << csv_field(g.baseline) << ',' << csv_number(g.p_vs_baseline) << ','
        << to_string(agg.selection);
    if (!measures.empty()) out << ',' << csv_number(g.sharpness_rho.mean);
    for (const auto* m : measures) {  // in the measure's own units
      auto it = g.flatness.find(m->key);
      auto p = g.p_flatness.find(m->key);
      out << ',' << csv_number(it == g.flatness.end() ? NAN : it->second.mean) << ','
          << csv_number(it == g.flatness.end() ? NAN : it->second.std) << ','
          << csv_number(p == g.p_flatness.end() ? NAN : p->second);
    }
    out << '\n';
  }
  return out.str();
}

std::vector<std::string> notes_for_stderr(const Aggregate& agg) {
  std::vector<std::string> out;
  if (agg.selection == Selection::best_epoch) out.push_back("warning: " + best_warning());
  for (const auto& r : agg.not_averaged) out.push_back("not averaged: " + describe_unaveraged(r));
  for (const auto& m : agg.missing) out.push_back("missing: " + describe_missing(m));
  return out;
}

std::string render_report(const Aggregate& agg, Format format) {
  if (format == Format::csv) return render_csv(agg);
  std::vector<Table> tables{main_table(agg)};
  if (has_train_accuracy(agg)) tables.push_back(gap_table(agg));
  for (const auto& view : sweep_views(agg)) tables.push_back(sweep_table(agg, view));
  if (has_any_flatness(agg)) tables.push_back(flatness_table(agg));
  std::string out;
  for (std::size_t i = 0; i < tables.size(); ++i) {
    if (i) out += "\n";
    out += format == Format::latex ? render_latex(tables[i]) : render_markdown(tables[i]);
  }
  return out;
}

}  // namespace flatface::reports
