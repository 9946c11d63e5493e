// Result files -> one row per (setup, rho, swept values): mean and sample std over seeds at a
// selected epoch.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "results/result_store.hpp"

namespace flatface::reports {

// Which epoch of each run is reported.
enum class Selection {
  final_epoch,  // the last epoch with every benchmark evaluated (default)
  best_epoch,  // per run, the epoch with the best average benchmark accuracy (selects on test sets)
};
Selection parse_selection(const std::string& text);  // "final" | "best"; throws ConfigError
const char* to_string(Selection s);

// The flatness measures a report shows, each the first value of a dataset under /analysis of a
// run's file (runtime/src/flatness/analysis.hpp); `main` ones also end the main table.
struct FlatnessMeasure {
  const char* key;    // CSV column stem, map key
  const char* path;   // below /analysis
  const char* label;  // table header (Markdown; LaTeX below)
  const char* latex;
  bool main;
};
inline constexpr FlatnessMeasure kFlatnessMeasures[] = {
    {"lambda_max", "hessian/eigenvalues", "λ_max", "$\\lambda_{\\max}$", true},
    {"trace", "trace/mean", "Trace", "Trace", true},
    {"sharpness", "sharpness/worst_case", "Sharpness", "Sharpness", true},
    {"sharpness_adaptive", "sharpness/worst_case_adaptive", "Adaptive sharpness",
     "Adaptive sharpness", false},
    {"sharpness_average", "sharpness/average_case", "Average sharpness", "Average sharpness",
     false},
};

// One run as found on disk. Fractions (0..1), as stored.
struct RunResult {
  std::string file;
  std::string run_id, setup, head, perturbation, rho;  // attributes, as written
  double rho_value = NAN;                              // NaN: the setup has no rho
  // The run's swept values, "head.m" -> "0.3" (its sweep.* attributes; perturbation.rho too).
  std::map<std::string, std::string> swept;
  std::string seed;
  RunState status = RunState::running;
  std::string failure_reason;  // also says why a complete run is unusable
  std::int64_t failed_step = -1;
  std::int64_t epochs_done = 0;
  bool usable = false;  // complete and has an evaluated epoch: enters the averages
  std::int64_t selected_epoch = 0;
  std::map<std::string, double> accuracy;  // benchmark -> accuracy at the selected epoch
  double average = NAN;                    // mean over the benchmarks at that epoch
  double train_accuracy = NAN;
  double gap = NAN;  // generalization gap = train accuracy - average benchmark accuracy (Fig. 2-3)
  // Flatness (flatface analyze), by FlatnessMeasure::key; absent when not analysed.
  std::map<std::string, double> flatness;
  double sharpness_rho = NAN;  // the ρ the sharpness measures used
  // The 1-D landscape along a filter-normalised direction, and the 2-D one ([α][β], row-major).
  std::vector<double> landscape_alpha, landscape_loss;
  std::vector<double> landscape_alpha_2d, landscape_beta_2d, landscape_loss_2d;
};

struct MeanStd {
  double mean = NAN;
  double std = NAN;  // sample standard deviation (n - 1); NaN when n < 2
  std::size_t n = 0;
};
MeanStd mean_std(const std::vector<double>& values);  // NaN values are skipped

struct Group {
  std::string setup, rho, head, perturbation;
  double rho_value = NAN;
  std::map<std::string, std::string> swept;  // as in RunResult, shared by the group's runs
  std::vector<RunResult> runs;              // the usable runs, by seed
  std::map<std::string, MeanStd> accuracy;  // per benchmark
  MeanStd average, train_accuracy, gap;
  // Welch's t-test of this group's per-seed averages against its baseline (same head, no
  // perturbation); NaN when there is none or either side has fewer than two seeds.
  std::string baseline;  // the baseline's setup name, empty when none
  double p_vs_baseline = NAN;
  // Per FlatnessMeasure::key over the analysed runs, and Welch's p against the baseline's.
  std::map<std::string, MeanStd> flatness;
  std::map<std::string, double> p_flatness;
  MeanStd sharpness_rho;

  std::vector<double> averages() const;  // per run
  std::vector<double> flatness_values(const std::string& key) const;  // per analysed run
  // "ArcFace head.m=0.3": the setup and its swept values besides rho (which has a column).
  std::string label() const;
};

// "head.m=0.3 train.lr=0.05": swept values besides perturbation.rho, numbers in shortest form.
std::string swept_text(const std::map<std::string, std::string>& swept);
// A swept value as a number; NaN when it is not one.
double swept_number(const std::map<std::string, std::string>& swept, const std::string& key);

// Runs of the grid (one setup, rho and swept values) that have no result file yet.
struct MissingRuns {
  std::string setup, rho;  // rho as the grid writes it, empty when the setup has none
  std::string swept;       // the other swept values, as swept_text() writes them
  std::vector<std::string> seeds, run_ids;
};

struct Aggregate {
  Selection selection = Selection::final_epoch;
  std::vector<std::string> benchmarks;  // column order
  std::vector<Group> groups;  // in the experiment's setup order, then by swept values and rho
  std::vector<RunResult> not_averaged;  // running, failed, or without an evaluated epoch
  // Runs of the grids the results come from (the resolved experiments they record) that have no
  // result file yet, in grid order.
  std::vector<MissingRuns> missing;
  bool same_seed_count() const;
  bool has_rho() const;  // some group has a numeric rho
  bool has_flatness(const std::string& key) const;  // some group has the measure
};

// Reads every *.h5 of the folders (a file path is taken as is). Throws ConfigError for a missing
// folder, RuntimeError (naming the file) for an unreadable file.
std::vector<std::pair<std::string, RunRecord>> load_results(const std::vector<std::string>& paths);

RunResult summarize_run(const std::string& file, const RunRecord& record, Selection selection);

Aggregate aggregate_runs(const std::vector<std::pair<std::string, RunRecord>>& records,
                         Selection selection);

// The plugin name of a head/perturbation attribute: `plugin = "x"` inside it, else its first word.
std::string plugin_name(const std::string& attribute);

}  // namespace flatface::reports
