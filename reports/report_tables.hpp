// The report's tables: Table 2 style accuracies and the generalization gap (accuracy_tables.cpp),
// a Table 1 style sweep of rho or any other swept option (sweep_table.cpp), the flatness measures
// (flatness_table.cpp); each as a format-neutral Table, written with the cells of table_cells.hpp.
// The whole report as Markdown, LaTeX or CSV is report_tables.cpp.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "aggregate.hpp"
#include "table.hpp"

namespace flatface::reports {

enum class Format { markdown, latex, csv };
Format parse_format(const std::string& text);  // md | markdown | latex | tex | csv; ConfigError

// One swept key across the rows. A series is the rows that differ in this key only (same setup,
// same other swept values); `key` is "rho" (the perturbation's ρ) or a swept option, "head.m".
struct SweepSeries {
  std::string label;                        // the setup and the other swept values
  std::map<double, const Group*> by_value;  // two or more
};
struct SweepView {
  std::string key;
  std::set<double> values;          // of every series
  std::vector<SweepSeries> series;  // in group order
};
// Every key with a series of two or more numeric values: rho first, then the options by name.
std::vector<SweepView> sweep_views(const Aggregate& agg);
// "ρ" for rho, else the key.
std::string sweep_symbol(const SweepView& view);

Table main_table(const Aggregate& agg);  // benchmarks, Average, p vs baseline
Table gap_table(const Aggregate& agg);   // train accuracy, Average, gap
// Average per series x value of the key, the best value per series (Table 1 for rho).
Table sweep_table(const Aggregate& agg, const SweepView& view);
// λ_max, trace, sharpness (worst, adaptive, average) with Welch's p vs the baseline, per row.
Table flatness_table(const Aggregate& agg);
bool has_any_flatness(const Aggregate& agg);

bool has_train_accuracy(const Aggregate& agg);

// One CSV row per row of the tables: plain numbers in percent, mean and std columns.
std::string render_csv(const Aggregate& agg);

// Main table, then the gap table and the rho sweep where the data has them. For CSV only the one
// table: the runs left out and the selection warning are in `notes_for_stderr`.
std::string render_report(const Aggregate& agg, Format format);
std::vector<std::string> notes_for_stderr(const Aggregate& agg);

// "FlatFace-SAM-ArcFace rho=0.1 seed 2 (run ab12, file): failed at step 17: NaN loss (3 epochs)"
std::string describe_unaveraged(const RunResult& run);
// "FlatFace-SAM-ArcFace rho=0.1: seeds 1, 2 (runs 0a1b..., 2c3d...)"
std::string describe_missing(const MissingRuns& missing);

}  // namespace flatface::reports
