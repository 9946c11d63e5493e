#include "report_tables.hpp"

#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

#include "flatface/options.hpp"
#include "table_cells.hpp"

namespace flatface::reports {
namespace {

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
  for (const auto* m : measures) out << ',' << m->key << "_mean," << m->key << "_std,p_" << m->key;
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
