#include "grid/grid_status.hpp"

#include <algorithm>
#include <filesystem>
#include <map>

#include "flatface/options.hpp"
#include "results/result_store.hpp"
#include "training/trainer.hpp"

namespace flatface {

namespace {

namespace fs = std::filesystem;

// The mean accuracy over the benchmarks at the last epoch that evaluated all of them.
double latest_accuracy(const RunRecord& r) {
  if (r.benchmark_names.empty()) return NAN;
  for (auto it = r.epochs.rbegin(); it != r.epochs.rend(); ++it) {
    double sum = 0;
    bool all = true;
    for (const auto& name : r.benchmark_names) {
      auto b = it->benchmarks.find(name);
      all = all && b != it->benchmarks.end() && std::isfinite(b->second.accuracy);
      if (all) sum += b->second.accuracy;
    }
    if (all) return sum / static_cast<double>(r.benchmark_names.size());
  }
  return NAN;
}

double mean(const std::vector<double>& v) {
  if (v.empty()) return NAN;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

}  // namespace

std::size_t GridStanding::count(RunState s) const {
  return static_cast<std::size_t>(
      std::count_if(runs.begin(), runs.end(), [s](const RunStanding& r) { return r.state == s; }));
}

GridStanding grid_standing(const Experiment& experiment, const std::string& output,
                           const ClaimFolder& claims) {
  Experiment e = experiment;
  e.output = output;
  GridStanding g;
  g.experiment = e.name;
  g.output = output;
  g.stale_after = claims.stale_after();
  const auto board = claims.snapshot();
  for (const auto& spec : expand_grid(e)) {
    RunStanding r;
    r.spec = spec;
    r.setup = e.setups[spec.setup].name;
    r.epochs = e.train.epochs;
    r.has_checkpoint = fs::exists(checkpoint_path(e, spec));
    const std::string file = result_path(e, spec);
    std::optional<RunRecord> record;
    if (fs::exists(file)) {
      r.has_result = true;
      try {
        record = read_run_record(file);
      } catch (const std::exception& err) {
        r.state = RunState::failed;
        r.failure_reason = err.what();
      }
    }
    if (record) {
      r.epochs_done = static_cast<std::int64_t>(record->epochs.size());
      r.accuracy = latest_accuracy(*record);
      if (!record->epochs.empty() && record->epochs.back().wall_time > 0)
        r.seconds_per_epoch = record->epochs.back().wall_time / static_cast<double>(r.epochs_done);
      if (record->status != RunState::running) r.state = record->status;  // complete, failed
      if (record->status == RunState::failed) r.failure_reason = record->failure_reason;
    }
    if (auto claim = board.find(spec.id); r.state == RunState::pending && claim != board.end()) {
      r.state = claims.state(claim->second);  // still pending when the claim lets the run go
      if (r.state != RunState::pending) r.claim = claim->second;
    }
    g.runs.push_back(std::move(r));
  }

  std::map<std::string, std::vector<double>> per_setup;
  std::vector<double> all;
  for (const auto& r : g.runs)
    if (std::isfinite(r.seconds_per_epoch)) {
      per_setup[r.setup].push_back(r.seconds_per_epoch);
      all.push_back(r.seconds_per_epoch);
    }
  double left = 0;
  bool known = true;
  for (const auto& r : g.runs) {
    if (r.state == RunState::complete || r.state == RunState::failed) continue;
    const double spe = per_setup.count(r.setup) ? mean(per_setup[r.setup]) : mean(all);
    known = known && std::isfinite(spe);
    left += spe * static_cast<double>(std::max<std::int64_t>(0, r.epochs - r.epochs_done));
  }
  const double workers = static_cast<double>(std::max<std::size_t>(1, g.count(RunState::running)));
  g.eta_seconds = known ? left / workers : NAN;
  return g;
}

Experiment experiment_of_results(const std::string& folder) {
  std::map<std::string, std::size_t> configs;
  for (const auto& file : list_run_files(folder)) {
    try {
      const RunRecord r = read_run_record(file);
      auto it = r.attributes.find("config_toml");
      if (it != r.attributes.end() && !it->second.empty()) ++configs[it->second];
    } catch (const std::exception&) {
      // An unreadable file says nothing about the grid; its run shows up as failed.
    }
  }
  if (configs.empty())
    throw ConfigError(folder +
                      ": no result file here records its experiment (no run has "
                      "started yet?); give the experiment file instead");
  auto most = std::max_element(configs.begin(), configs.end(),
                               [](const auto& a, const auto& b) { return a.second < b.second; });
  Experiment e = parse_experiment(most->first, folder + " (the experiment its results record)");
  e.output = folder;
  return e;
}

}  // namespace flatface
