// The report's tables: Table 2 style accuracies, the generalization gap, the Table 1 style rho
// sweep; each as a format-neutral Table, plus the whole report as Markdown, LaTeX or CSV.
#pragma once

#include <string>
#include <vector>

#include "aggregate.hpp"
#include "table.hpp"

namespace flatface::reports {

enum class Format { markdown, latex, csv };
Format parse_format(const std::string& text);  // md | markdown | latex | tex | csv; ConfigError

Table main_table(const Aggregate& agg);       // benchmarks, Average, p vs baseline
Table gap_table(const Aggregate& agg);        // train accuracy, Average, gap
Table rho_sweep_table(const Aggregate& agg);  // Average per setup x rho, best rho per setup
// λ_max, trace, sharpness (worst, adaptive, average) with Welch's p vs the baseline, per setup.
Table flatness_table(const Aggregate& agg);
bool has_any_flatness(const Aggregate& agg);

bool has_train_accuracy(const Aggregate& agg);
// Setups with at least two numeric rho values, in group order.
std::vector<std::string> swept_setups(const Aggregate& agg);

// One CSV row per (setup, rho): plain numbers in percent, mean and std columns.
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
