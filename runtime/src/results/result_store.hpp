// results/: what a run leaves behind for people and for the report: one HDF5 file per run. A leaf
// of the runtime (it includes no other folder); training/, grid/, flatness/ and reports/ read and
// write runs through it.
//
// One HDF5 file per run: its attributes, status and per-epoch metrics. Written whole and renamed
// into place, so a crash at any moment leaves the previous complete file readable.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "results/run_state.hpp"

namespace flatface {

// One verification set at one epoch. Accuracies are fractions (0..1).
struct BenchmarkMetrics {
  double accuracy = NAN;      // mean over the 10 folds
  double accuracy_std = NAN;  // std over the folds
  double threshold = NAN;     // mean best threshold
  double tar_at_far = NAN;    // TAR@FAR=1e-3
};

struct EpochMetrics {
  std::int64_t epoch = 0;  // 1-based: epochs completed
  double lr = NAN, loss = NAN, perturbation_loss = NAN, loss_perturbed = NAN, grad_norm = NAN,
         epsilon_norm = NAN, train_accuracy = NAN, images_per_second = NAN, wall_time = NAN;
  // Steps of the epoch that made a second pass, over all its steps (the amortised cost of
  // strategies that perturb on some steps only: LookSAM, AE-SAM).
  double second_pass_fraction = NAN;
  std::map<std::string, BenchmarkMetrics> benchmarks;  // by benchmark name
};

// An array of float64 with its shape ({} for a scalar), row-major.
struct AnalysisArray {
  std::vector<std::uint64_t> shape;
  std::vector<double> values;
};

// The flatness analysis of a run (flatface analyze): arrays by path below /analysis
// ("hessian/eigenvalues"), and string attributes by group path ("" for /analysis itself).
struct AnalysisRecord {
  std::map<std::string, AnalysisArray> arrays;
  std::map<std::string, std::map<std::string, std::string>> attributes;
  bool empty() const { return arrays.empty() && attributes.empty(); }
};

struct RunRecord {
  // experiment, setup, head, perturbation, backbone, dataset, rho, seed, run_id, flatface_version,
  // torch_version, device, start_time, end_time, config_toml
  std::map<std::string, std::string> attributes;
  // A file records running, complete or failed (pending and stale are what claims add).
  RunState status = RunState::running;
  std::string failure_reason;
  std::int64_t failed_step = -1;
  std::vector<std::string> benchmark_names;  // column order
  std::vector<EpochMetrics> epochs;
  AnalysisRecord analysis;  // empty until the run is analysed
};

// File layout (h5py: f.attrs[...], f["metrics/loss"][:], f["eval/LFW/accuracy"][:]):
//   root attributes  every `attributes` entry as a string; rho_value (float64, NaN when rho is not
//                    a number) and seed_value (int64) numerically; status, failure_reason,
//                    failed_step (int64), benchmark_names (string array, column order)
//   /metrics/<name>  float64[epochs] for epoch, lr, loss, perturbation_loss, loss_perturbed,
//                    grad_norm, epsilon_norm, train_accuracy, images_per_second, wall_time,
//                    second_pass_fraction (NaN when read from a file written before it existed).
//                    perturbation_loss, loss_perturbed and epsilon_norm are means over the steps
//                    that made a second pass; grad_norm over the steps that computed it. NaN
//                    stores "not computed": no step of the epoch reported the statistic
//   /eval/<bench>/   float64[epochs] accuracy, accuracy_std, threshold, tar_at_far (NaN where the
//                    benchmark was not evaluated that epoch)
//   /analysis/...    only when analysed: float64 datasets of any shape (analysis.hpp lists them),
//                    string attributes on /analysis and its groups (the settings used)

// Writes temporary_path(path), flushes it to disk and renames it over <path>. Throws RuntimeError.
void write_run_record(const std::string& path, const RunRecord& record);

// Throws RuntimeError naming the file and the object that is missing or malformed.
RunRecord read_run_record(const std::string& path);

// <path>.tmp.<host>.<pid>: a name of this process's own for the next version of `path`, so that two
// processes never write one temporary file (one may be a paused holder of a run taken over).
std::string temporary_path(const std::string& path);

// The *.h5 files directly in `folder`, sorted by name (temporary files are skipped).
// Throws ConfigError when the folder does not exist.
std::vector<std::string> list_run_files(const std::string& folder);

}  // namespace flatface
