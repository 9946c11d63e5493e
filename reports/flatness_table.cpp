// The flatness table: λ_max, trace and the sharpness measures of the training loss per setup, with
// Welch's p against the baseline.
#include <cmath>
#include <set>

#include "report_tables.hpp"
#include "table_cells.hpp"

namespace flatface::reports {

bool has_any_flatness(const Aggregate& agg) {
  for (const auto& m : kFlatnessMeasures)
    if (agg.has_flatness(m.key)) return true;
  return false;
}

Table flatness_table(const Aggregate& agg) {
  Table t;
  t.caption = "Flatness of the training loss at the final weights, mean ± std over seeds";
  t.caption_latex =
      "Flatness of the training loss at the final weights, mean $\\pm$ std over seeds";
  add_group_header(agg, t);
  const bool with_p = any_baseline(agg);
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
        row.push_back(p_cell(it == g.p_flatness.end() ? NAN : it->second));
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
    t.notes.push_back(
        {"p: two-sided Welch's t-test of the per-seed values against the setup with "
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
        "compare rows with the same ρ, or analyse with one ρ for all (--settings '{ rho = 0.05 "
        "}').");
  return t;
}

}  // namespace flatface::reports
