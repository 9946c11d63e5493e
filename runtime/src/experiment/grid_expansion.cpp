// The grid: each setup's runs (seeds x the product of its sweep axes), and the experiment as one
// run sees it.
#include <map>

#include "experiment/experiment.hpp"
#include "experiment/run_ids.hpp"
#include "experiment/sweep.hpp"
#include "experiment/train_section.hpp"

namespace flatface {

namespace {

// The product of a setup's sweep axes, the last one turning fastest: one list of values per run.
std::vector<std::vector<SweptValue>> sweep_product(const Setup& s) {
  std::vector<std::vector<SweptValue>> combos{{}};
  for (const auto& axis : s.sweep) {
    std::vector<std::vector<SweptValue>> next;
    for (const auto& combo : combos)
      for (const auto& value : axis.values) {
        next.push_back(combo);
        next.back().push_back(SweptValue{axis.key, value, axis.pos});
      }
    combos = std::move(next);
  }
  return combos;
}

// One run: its rho (swept or written) and its id.
RunSpec make_run(const Experiment& e, std::size_t setup, std::int64_t seed,
                 std::vector<SweptValue> swept) {
  RunSpec r;
  r.setup = setup;
  r.seed = seed;
  r.swept = std::move(swept);
  const Experiment re = run_experiment(e, r);
  Options pert = perturbation_options(re, r);
  if (const auto* rho = pert.find("rho")) {
    if (auto d = std::get_if<double>(&rho->data)) r.rho = *d;
    if (auto i = std::get_if<std::int64_t>(&rho->data)) r.rho = static_cast<double>(*i);
  }
  r.canonical = run_canonical(re, setup, pert, seed);
  r.id = run_id(r.canonical);
  return r;
}

}  // namespace

Experiment run_experiment(const Experiment& e, const RunSpec& run) {
  Experiment r = e;
  Setup& setup = r.setups[run.setup];
  bool train_swept = false;
  // Copies of their own: Options share their table when copied.
  for (PluginRef* ref : {&setup.head, &setup.perturbation, &r.backbone})
    ref->options = ref->options.fresh_copy();
  r.train_options = e.train_options.fresh_copy();
  for (const auto& v : run.swept) {
    auto [section, option] = split_key(v.key);
    Options& target = section == "head"           ? setup.head.options
                      : section == "perturbation" ? setup.perturbation.options
                      : section == "backbone"     ? r.backbone.options
                                                  : r.train_options;
    target.set(option, option_value(v.value, v.pos));
    train_swept = train_swept || section == "train";
  }
  if (train_swept) r.train = parse_train(r.train_options);
  return r;
}

std::vector<RunSpec> expand_grid(const Experiment& e) {
  std::vector<RunSpec> runs;
  std::map<std::string, std::size_t> by_id;
  for (std::size_t si = 0; si < e.setups.size(); ++si) {
    const auto combos = sweep_product(e.setups[si]);
    for (auto seed : e.seeds) {
      for (const auto& combo : combos) {
        RunSpec r = make_run(e, si, seed, combo);
        auto [at, fresh] = by_id.emplace(r.id, runs.size());
        if (!fresh)
          throw ConfigError(e.file + ": runs '" + describe_run(e, runs[at->second]) + "' and '" +
                            describe_run(e, r) + "' have one run id, " + r.id +
                            " (their settings hash alike); change one of them");
        runs.push_back(std::move(r));
      }
    }
  }
  return runs;
}

Options perturbation_options(const Experiment& e, const RunSpec& run) {
  Options o = e.setups[run.setup].perturbation.options.fresh_copy();
  o.consume("plugin");
  o.consume("bn_second_pass");
  o.consume("epsilon");
  for (const auto& v : run.swept) {
    auto [section, option] = split_key(v.key);
    if (section == "perturbation") o.set(option, option_value(v.value, v.pos));
  }
  return o;
}

}  // namespace flatface
