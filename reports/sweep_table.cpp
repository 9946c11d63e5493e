// The sweep tables (Table 1 for ρ): which swept keys form series of two or more values, and the
// average accuracy per series and value, with each series' best value.
#include <algorithm>
#include <cmath>
#include <iterator>
#include <map>
#include <set>

#include "experiment/number_text.hpp"
#include "report_tables.hpp"
#include "table_cells.hpp"

namespace flatface::reports {

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

}  // namespace flatface::reports
