// The accuracy tables: Table 2 style verification accuracy per setup (with Welch's p against the
// baseline and the main flatness measures), and the generalization gap.
#include <algorithm>
#include <cmath>

#include "report_tables.hpp"
#include "table_cells.hpp"

namespace flatface::reports {

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
  const bool with_p = any_baseline(agg);
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
      row.push_back(p_cell(g.p_vs_baseline));
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

}  // namespace flatface::reports
