// `--only KEY=VALUE`: which runs of a grid a command acts on.
#include <algorithm>
#include <cmath>
#include <set>

#include "experiment/experiment.hpp"
#include "experiment/sweep.hpp"
#include "experiment/toml_options.hpp"

namespace flatface {

namespace {

struct Filter {
  std::string text, key, value;
};

// Each --only as KEY=VALUE, KEY one the filters know.
std::vector<Filter> parse_filters(const std::vector<std::string>& only) {
  std::vector<Filter> filters;
  for (const auto& f : only) {
    auto eq = f.find('=');
    if (eq == std::string::npos || eq == 0)
      throw ConfigError("--only " + f + ": expected KEY=VALUE (e.g. seed=0 or head.m=0.3)");
    Filter filter{f, f.substr(0, eq), f.substr(eq + 1)};
    static const std::set<std::string> plain{"setup", "seed", "rho", "id"};
    if (!plain.count(filter.key) && !is_option_key(filter.key))
      throw ConfigError("--only " + f + ": unknown key '" + filter.key +
                        "' (known: setup, seed, rho, id, or an option such as " + kSweepSections +
                        ")");
    filters.push_back(std::move(filter));
  }
  return filters;
}

// The options of one section of a run's setup ("head", "perturbation", "backbone") or [train],
// as the run sees them; a fresh copy, so that reading it marks nothing in `e`.
Options section_options(const Experiment& e, std::size_t setup, const std::string& section) {
  if (section == "head") return e.setups[setup].head.options.fresh_copy();
  if (section == "perturbation") return e.setups[setup].perturbation.options.fresh_copy();
  if (section == "backbone") return e.backbone.options.fresh_copy();
  return e.train_options.fresh_copy();
}

// A run's value of an option ("head.m"), as the run sees it (swept or written); nothing when the
// run has none, or a list.
std::optional<Options::Scalar> option_of(const Experiment& e, const RunSpec& r,
                                         const std::string& key) {
  auto [section, option] = split_key(key);
  const Experiment re = run_experiment(e, r);
  const Options o = section_options(re, r.setup, section);
  const Options::Value* v = o.find(option);
  if (!v) return std::nullopt;
  std::optional<Options::Scalar> out;
  std::visit(
      [&out](const auto& x) {
        if constexpr (!std::is_same_v<std::decay_t<decltype(x)>, std::vector<Options::Scalar>>)
          out = x;
      },
      v->data);
  return out;
}

// An option filter must name an option some run has: a typo would otherwise select nothing.
void check_options_exist(const Experiment& e, const std::vector<RunSpec>& runs,
                         const std::vector<Filter>& filters) {
  for (const auto& f : filters) {
    if (f.key.find('.') == std::string::npos) continue;
    const bool anywhere = std::any_of(runs.begin(), runs.end(),
                                      [&](const RunSpec& r) { return option_of(e, r, f.key); });
    if (anywhere) continue;
    std::set<std::string> swept;
    for (const auto& s : e.setups)
      for (const auto& axis : s.sweep) swept.insert(axis.key);
    std::string list;
    for (const auto& k : swept) list += (list.empty() ? "" : ", ") + k;
    throw ConfigError(
        "--only " + f.text + ": no run of " + e.file + " sets '" + f.key + "'" +
        (list.empty() ? std::string(" (it sweeps nothing)") : " (swept keys: " + list + ")"));
  }
}

// A value given on the command line (--only): TOML value syntax, or else a bare word.
Options::Scalar parse_scalar_text(const std::string& text) {
  try {
    auto parsed = toml::parse("value = " + text);
    if (auto s = scalar_of(*parsed.get("value"))) return *s;
  } catch (const toml::parse_error&) {
  }
  return text;
}

// Numbers equal to 12 significant digits, as a value typed on the command line is meant.
bool matches(const Options::Scalar& wanted, const Options::Scalar& have) {
  auto x = number_of(wanted), y = number_of(have);
  if (x && y) return std::abs(*x - *y) <= 1e-12 * std::max(std::abs(*x), std::abs(*y));
  return wanted == have;
}

bool passes(const Experiment& e, const RunSpec& r, const Filter& f) {
  if (f.key == "setup") return e.setups[r.setup].name == f.value;
  if (f.key == "seed") return std::to_string(r.seed) == f.value;
  if (f.key == "id") return r.id == f.value;
  if (f.key == "rho") return r.rho && matches(parse_scalar_text(f.value), *r.rho);
  auto have = option_of(e, r, f.key);
  return have && matches(parse_scalar_text(f.value), *have);
}

}  // namespace

std::vector<RunSpec> select_runs(const Experiment& e, const std::vector<RunSpec>& runs,
                                 const std::vector<std::string>& only) {
  const std::vector<Filter> filters = parse_filters(only);
  check_options_exist(e, runs, filters);
  std::vector<RunSpec> out;
  for (const auto& r : runs)
    if (std::all_of(filters.begin(), filters.end(),
                    [&](const Filter& f) { return passes(e, r, f); }))
      out.push_back(r);
  return out;
}

}  // namespace flatface
