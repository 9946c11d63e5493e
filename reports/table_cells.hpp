// How the report's tables write their cells, and what every table of setups shares: the dash
// of a missing value, percent and measure cells, ρ and p texts, the bold best of a column, the
// Setup / ρ / n columns in front and the notes below. The tables are accuracy_tables.cpp,
// sweep_table.cpp and flatness_table.cpp; report_tables.cpp puts them together.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "aggregate.hpp"
#include "table.hpp"

namespace flatface::reports {

inline constexpr const char* kDash = "–";  // en dash: no value

// "99.39 ± 0.05" from fractions, in percent with two decimals like the paper.
Cell percent_cell(const MeanStd& m);
// Displayed value in hundredths of a percent: ties at the shown precision are all bold.
long long shown(double fraction);
// Marks the best mean of column `col` over `rows` (the highest, or lowest when `lower`).
void bold_best(std::vector<std::vector<Cell>>& rows, std::size_t col,
               const std::vector<double>& means, bool lower = false);

// Three significant digits: flatness measures span orders of magnitude.
std::string sig3(double v);
// "41.2 ± 3.1" in the measure's own units; the group's measure `key`, or a dash.
Cell measure_cell(const MeanStd& m);
Cell measure_cell(const Group& g, const std::string& key);

std::string rho_text(const std::string& rho, double value);
// Welch's p: "0.012", "<0.001", or a dash.
std::string p_text(double p);
Cell p_cell(double p);
// Whether any row has a baseline to test against (the p columns).
bool any_baseline(const Aggregate& agg);

std::string epoch_phrase(Selection s);
std::string best_warning();  // why --select best is optimistic

// Columns shared by every per-group table: Setup, rho (when any), n (when it varies).
void add_group_header(const Aggregate& agg, Table& t);
std::vector<Cell> group_cells(const Aggregate& agg, const Group& g);
// The --select warning, the seed count, the runs left out and the runs missing.
void add_common_notes(const Aggregate& agg, Table& t);

}  // namespace flatface::reports
