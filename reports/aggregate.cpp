#include "aggregate.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>

#include "experiment/experiment.hpp"
#include "experiment/number_text.hpp"
#include "flatface/options.hpp"
#include "welch.hpp"

namespace flatface::reports {
namespace {

std::string attribute(const RunRecord& r, const std::string& key) {
  auto it = r.attributes.find(key);
  return it == r.attributes.end() ? std::string() : it->second;
}

double parse_number(const std::string& text) {
  if (text.empty()) return NAN;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  return (end && *end == '\0') ? v : NAN;
}

// Average accuracy over `names` at one epoch; NaN unless every benchmark was evaluated.
double average_accuracy(const EpochMetrics& e, const std::vector<std::string>& names) {
  if (names.empty()) return NAN;
  double sum = 0;
  for (const auto& n : names) {
    auto it = e.benchmarks.find(n);
    if (it == e.benchmarks.end() || std::isnan(it->second.accuracy)) return NAN;
    sum += it->second.accuracy;
  }
  return sum / static_cast<double>(names.size());
}

// The runs of every grid that `records` come from, without a result file among them. A stored
// experiment that no longer parses (written by another flatface version) lists nothing.
std::vector<MissingRuns> find_missing(
    const std::vector<std::pair<std::string, RunRecord>>& records) {
  std::set<std::string> present, configs;
  for (const auto& [file, rec] : records) {
    std::string id = attribute(rec, "run_id");
    present.insert(id.empty() ? std::filesystem::path(file).stem().string() : id);
    const std::string toml = attribute(rec, "config_toml");
    if (!toml.empty()) configs.insert(toml);
  }
  std::vector<MissingRuns> out;
  for (const auto& toml : configs) {
    std::vector<RunSpec> grid;
    Experiment e;
    try {
      e = parse_experiment(toml, "the experiment a result file records");
      grid = expand_grid(e);
    } catch (const std::exception&) {
      continue;
    }
    for (const auto& r : grid) {
      if (!present.insert(r.id).second) continue;
      const std::string setup = e.setups[r.setup].name;
      const std::string rho = r.rho ? format_rho(*r.rho) : "";
      const std::string swept = swept_label(r);
      auto group = std::find_if(out.begin(), out.end(), [&](const MissingRuns& m) {
        return m.setup == setup && m.rho == rho && m.swept == swept;
      });
      if (group == out.end()) group = out.insert(out.end(), MissingRuns{setup, rho, swept, {}, {}});
      group->seeds.push_back(std::to_string(r.seed));
      group->run_ids.push_back(r.id);
    }
  }
  return out;
}

// Setup names in the order of the experiment's [[setup]] tables, from the stored TOML.
void collect_setup_order(const std::string& toml, std::vector<std::string>& order) {
  static const std::regex header(R"(^\s*\[\[\s*setup\s*\]\])");
  static const std::regex any_table(R"(^\s*\[)");
  // "…" as written by hand, '…' as toml++ writes the resolved file.
  static const std::regex name_line(R"re(^\s*name\s*=\s*(?:"([^"]*)"|'([^']*)'))re");
  std::istringstream in(toml);
  std::string line;
  bool in_setup = false;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, header)) {
      in_setup = true;
    } else if (std::regex_search(line, any_table)) {
      in_setup = false;
    } else if (in_setup && std::regex_search(line, m, name_line)) {
      const std::string name = m[1].matched ? m[1].str() : m[2].str();
      if (std::find(order.begin(), order.end(), name) == order.end()) order.push_back(name);
      in_setup = false;
    }
  }
}

// The values of /analysis/<path>; empty when the run has none.
const std::vector<double>& analysis_values(const RunRecord& r, const std::string& path) {
  static const std::vector<double> none;
  auto it = r.analysis.arrays.find(path);
  return it == r.analysis.arrays.end() ? none : it->second.values;
}

bool is_baseline(const std::string& perturbation) {
  return plugin_name(perturbation) == "none";
}

// A baseline compares with the runs that differ from it in the perturbation only: the same head
// and the same swept values of everything but the perturbation.
bool same_but_perturbation(const Group& a, const Group& b) {
  auto rest = [](const Group& g) {
    std::map<std::string, std::string> out;
    for (const auto& [key, value] : g.swept)
      if (key.rfind("perturbation.", 0) != 0) out[key] = value;
    return swept_text(out);
  };
  return a.head == b.head && rest(a) == rest(b);
}

// Swept values for sorting: numbers by value, before any text.
std::vector<std::pair<double, std::string>> sort_key(const std::map<std::string, std::string>& s) {
  std::vector<std::pair<double, std::string>> out;
  for (const auto& [key, value] : s) {
    const double v = parse_number(value);
    out.emplace_back(std::isnan(v) ? std::numeric_limits<double>::infinity() : v, value);
  }
  return out;
}

}  // namespace

Selection parse_selection(const std::string& text) {
  if (text == "final") return Selection::final_epoch;
  if (text == "best") return Selection::best_epoch;
  throw ConfigError("--select: expected 'final' or 'best', got '" + text + "'");
}

const char* to_string(Selection s) {
  return s == Selection::best_epoch ? "best" : "final";
}

MeanStd mean_std(const std::vector<double>& values) {
  MeanStd r;
  double sum = 0;
  for (double v : values)
    if (!std::isnan(v)) {
      sum += v;
      ++r.n;
    }
  if (r.n == 0) return r;
  r.mean = sum / static_cast<double>(r.n);
  if (r.n < 2) return r;
  double ss = 0;
  for (double v : values)
    if (!std::isnan(v)) ss += (v - r.mean) * (v - r.mean);
  r.std = std::sqrt(ss / static_cast<double>(r.n - 1));  // sample std, n - 1
  return r;
}

std::string swept_text(const std::map<std::string, std::string>& swept) {
  std::string out;
  for (const auto& [key, value] : swept) {
    if (key == "perturbation.rho") continue;
    const double v = parse_number(value);
    out += (out.empty() ? "" : " ") + key + "=" + (std::isnan(v) ? value : shortest_text(v));
  }
  return out;
}

double swept_number(const std::map<std::string, std::string>& swept, const std::string& key) {
  auto it = swept.find(key);
  return it == swept.end() ? NAN : parse_number(it->second);
}

std::string Group::label() const {
  const std::string values = swept_text(swept);
  return values.empty() ? setup : setup + " " + values;
}

std::vector<double> Group::averages() const {
  std::vector<double> v;
  for (const auto& r : runs) v.push_back(r.average);
  return v;
}

std::vector<double> Group::flatness_values(const std::string& key) const {
  std::vector<double> v;
  for (const auto& r : runs)
    if (auto it = r.flatness.find(key); it != r.flatness.end() && !std::isnan(it->second))
      v.push_back(it->second);
  return v;
}

bool Aggregate::has_flatness(const std::string& key) const {
  for (const auto& g : groups)
    if (auto it = g.flatness.find(key); it != g.flatness.end() && it->second.n > 0) return true;
  return false;
}

bool Aggregate::same_seed_count() const {
  for (const auto& g : groups)
    if (g.runs.size() != groups.front().runs.size()) return false;
  return true;
}

bool Aggregate::has_rho() const {
  for (const auto& g : groups)
    if (!std::isnan(g.rho_value)) return true;
  return false;
}

std::string plugin_name(const std::string& attribute) {
  static const std::regex quoted(R"(plugin\s*=\s*"([^"]*)\")");
  std::smatch m;
  if (std::regex_search(attribute, m, quoted)) return m[1].str();
  auto begin = attribute.find_first_not_of(" \t{");
  if (begin == std::string::npos) return "";
  auto end = attribute.find_first_of(" \t{(,;", begin);
  return attribute.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

std::vector<std::pair<std::string, RunRecord>> load_results(const std::vector<std::string>& paths) {
  std::vector<std::pair<std::string, RunRecord>> out;
  for (const auto& p : paths) {
    std::vector<std::string> files;
    if (std::filesystem::is_regular_file(p))
      files.push_back(p);
    else
      files = list_run_files(p);
    for (const auto& f : files) out.emplace_back(f, read_run_record(f));
  }
  return out;
}

RunResult summarize_run(const std::string& file, const RunRecord& record, Selection selection) {
  RunResult r;
  r.file = file;
  r.run_id = attribute(record, "run_id");
  if (r.run_id.empty()) r.run_id = std::filesystem::path(file).stem().string();
  r.setup = attribute(record, "setup");
  r.head = attribute(record, "head");
  r.perturbation = attribute(record, "perturbation");
  r.rho = attribute(record, "rho");
  r.rho_value = parse_number(r.rho);
  for (const auto& [key, value] : record.attributes)
    if (key.rfind("sweep.", 0) == 0) r.swept[key.substr(6)] = value;
  r.seed = attribute(record, "seed");
  r.status = record.status;
  r.failure_reason = record.failure_reason;
  r.failed_step = record.failed_step;
  r.epochs_done = static_cast<std::int64_t>(record.epochs.size());

  // The epoch to report: the last (or best) one with every benchmark evaluated.
  std::ptrdiff_t chosen = -1;
  double best = -std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < record.epochs.size(); ++i) {
    double avg = average_accuracy(record.epochs[i], record.benchmark_names);
    if (std::isnan(avg)) continue;
    if (selection == Selection::final_epoch || avg > best) {
      chosen = static_cast<std::ptrdiff_t>(i);
      best = avg;
    }
  }
  if (chosen >= 0) {
    const auto& e = record.epochs[static_cast<std::size_t>(chosen)];
    r.selected_epoch = e.epoch;
    for (const auto& n : record.benchmark_names) r.accuracy[n] = e.benchmarks.at(n).accuracy;
    r.average = average_accuracy(e, record.benchmark_names);  // mean over benchmarks, this run
    r.train_accuracy = e.train_accuracy;
    r.gap = r.train_accuracy - r.average;  // generalization gap (paper, Fig. 2-3)
  }
  for (const auto& m : kFlatnessMeasures) {
    // Copies: GCC 14 takes a reference returned for a temporary key for a dangling one.
    const std::vector<double> values = analysis_values(record, m.path);
    if (!values.empty()) r.flatness[m.key] = values.front();  // λ_max: the first eigenvalue
  }
  if (const std::vector<double> rho = analysis_values(record, "sharpness/rho"); !rho.empty())
    r.sharpness_rho = rho.front();
  r.landscape_alpha = analysis_values(record, "landscape/alpha");
  r.landscape_loss = analysis_values(record, "landscape/loss_1d");
  r.landscape_alpha_2d = analysis_values(record, "landscape/alpha_2d");
  r.landscape_beta_2d = analysis_values(record, "landscape/beta_2d");
  r.landscape_loss_2d = analysis_values(record, "landscape/loss_2d");
  r.usable = r.status == RunState::complete && chosen >= 0;
  if (r.status == RunState::complete && chosen < 0)
    r.failure_reason = "no epoch with every benchmark evaluated";
  return r;
}

namespace {

// The runs' groups by (setup, rho, swept values); numbers compare by value so that "0.1" and
// "0.10" meet. Runs that cannot be averaged go to agg.not_averaged.
std::vector<Group> group_runs(const std::vector<std::pair<std::string, RunRecord>>& records,
                              Selection selection, Aggregate& agg) {
  std::map<std::tuple<std::string, std::string, std::string>, Group> by_key;
  for (const auto& [file, rec] : records) {
    RunResult run = summarize_run(file, rec, selection);
    if (!run.usable) {
      agg.not_averaged.push_back(run);
      continue;
    }
    char key_rho[64];
    std::snprintf(key_rho, sizeof key_rho, "%.17g", run.rho_value);
    std::map<std::string, std::string> swept = run.swept;
    swept.erase("perturbation.rho");  // the rho attribute has it
    auto key = std::make_tuple(run.setup, std::isnan(run.rho_value) ? run.rho : key_rho,
                               swept_text(swept));
    Group& g = by_key[key];
    if (g.runs.empty()) {
      g.setup = run.setup;
      g.rho = run.rho;
      g.rho_value = run.rho_value;
      g.swept = run.swept;
      g.head = run.head;
      g.perturbation = run.perturbation;
    }
    g.runs.push_back(run);
  }
  std::vector<Group> groups;
  for (auto& [key, g] : by_key) groups.push_back(std::move(g));
  return groups;
}

// A group's runs in seed order, and its means ± std.
void summarize_group(Group& g, const std::vector<std::string>& benchmarks) {
  std::sort(g.runs.begin(), g.runs.end(), [](const RunResult& a, const RunResult& b) {
    return std::make_tuple(parse_number(a.seed), a.seed, a.run_id) <
           std::make_tuple(parse_number(b.seed), b.seed, b.run_id);
  });
  for (const auto& b : benchmarks) {
    std::vector<double> v;
    for (const auto& r : g.runs) v.push_back(r.accuracy.count(b) ? r.accuracy.at(b) : NAN);
    g.accuracy[b] = mean_std(v);
  }
  std::vector<double> train, gap, rhos;
  for (const auto& r : g.runs) {
    train.push_back(r.train_accuracy);
    gap.push_back(r.gap);
    rhos.push_back(r.sharpness_rho);
  }
  g.average = mean_std(g.averages());
  g.train_accuracy = mean_std(train);
  g.gap = mean_std(gap);
  for (const auto& m : kFlatnessMeasures) {
    auto values = g.flatness_values(m.key);
    if (!values.empty()) g.flatness[m.key] = mean_std(values);
  }
  g.sharpness_rho = mean_std(rhos);
}

// Experiment order; setups it does not name: baselines first, then by name. Then by the swept
// values and rho.
void order_groups(std::vector<Group>& groups, const std::vector<std::string>& setup_order) {
  auto order_of = [&](const Group& g) {
    auto it = std::find(setup_order.begin(), setup_order.end(), g.setup);
    return it == setup_order.end() ? setup_order.size()
                                   : static_cast<std::size_t>(it - setup_order.begin());
  };
  auto key = [&](const Group& g) {
    return std::make_tuple(order_of(g), !is_baseline(g.perturbation), g.setup, sort_key(g.swept),
                           std::isnan(g.rho_value) ? -1.0 : g.rho_value, g.rho);
  };
  std::sort(groups.begin(), groups.end(),
            [&](const Group& a, const Group& b) { return key(a) < key(b); });
}

// Each perturbed group beside its baseline (the same setup but the perturbation): Welch's p of
// the averages and of every flatness measure.
void compare_with_baselines(std::vector<Group>& groups) {
  for (auto& g : groups) {
    if (is_baseline(g.perturbation)) continue;
    for (const auto& base : groups) {
      if (!is_baseline(base.perturbation) || !same_but_perturbation(base, g)) continue;
      g.baseline = base.setup;
      g.p_vs_baseline = welch_t_test(g.averages(), base.averages()).p;
      for (const auto& m : kFlatnessMeasures)
        if (g.flatness.count(m.key) && base.flatness.count(m.key))
          g.p_flatness[m.key] =
              welch_t_test(g.flatness_values(m.key), base.flatness_values(m.key)).p;
      break;
    }
  }
}

}  // namespace

Aggregate aggregate_runs(const std::vector<std::pair<std::string, RunRecord>>& records,
                         Selection selection) {
  Aggregate agg;
  agg.selection = selection;
  std::vector<std::string> setup_order;
  for (const auto& [file, rec] : records) {
    collect_setup_order(attribute(rec, "config_toml"), setup_order);
    for (const auto& b : rec.benchmark_names)
      if (std::find(agg.benchmarks.begin(), agg.benchmarks.end(), b) == agg.benchmarks.end())
        agg.benchmarks.push_back(b);
  }
  agg.groups = group_runs(records, selection, agg);
  for (auto& g : agg.groups) summarize_group(g, agg.benchmarks);
  order_groups(agg.groups, setup_order);
  compare_with_baselines(agg.groups);
  std::sort(agg.not_averaged.begin(), agg.not_averaged.end(),
            [](const RunResult& a, const RunResult& b) {
              return std::tie(a.setup, a.rho, a.seed, a.run_id) <
                     std::tie(b.setup, b.rho, b.seed, b.run_id);
            });
  agg.missing = find_missing(records);
  return agg;
}

}  // namespace flatface::reports
