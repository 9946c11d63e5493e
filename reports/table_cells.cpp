#include "table_cells.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "experiment/number_text.hpp"
#include "report_tables.hpp"

namespace flatface::reports {
namespace {

std::string fixed2(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

Cell rho_cell(const Group& g) {
  std::string t = rho_text(g.rho, g.rho_value);
  return {t, t == kDash ? "--" : latex_escape(t), false};
}

}  // namespace

Cell percent_cell(const MeanStd& m) {
  if (std::isnan(m.mean)) return {kDash, "--", false};
  std::string mean = fixed2(100 * m.mean);
  std::string sd = std::isnan(m.std) ? kDash : fixed2(100 * m.std);
  std::string sd_tex = std::isnan(m.std) ? "--" : sd;
  return {mean + " ± " + sd, mean + " $\\pm$ " + sd_tex, false};
}

long long shown(double fraction) {
  return std::llround(fraction * 1e4);
}

void bold_best(std::vector<std::vector<Cell>>& rows, std::size_t col,
               const std::vector<double>& means, bool lower) {
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

std::string sig3(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

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

std::string p_text(double p) {
  if (std::isnan(p)) return kDash;
  if (p < 0.001) return "<0.001";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", p);
  return buf;
}

Cell p_cell(double p) {
  const std::string text = p_text(p);
  return {text, text == kDash ? "--" : (text == "<0.001" ? "$<$0.001" : text), false};
}

bool any_baseline(const Aggregate& agg) {
  return std::any_of(agg.groups.begin(), agg.groups.end(),
                     [](const Group& g) { return !g.baseline.empty(); });
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

}  // namespace flatface::reports
