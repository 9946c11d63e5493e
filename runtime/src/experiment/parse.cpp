// The experiment file read into an Experiment: one function per section, in the file's order.
#include <toml++/toml.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "experiment/experiment.hpp"
#include "experiment/overrides.hpp"
#include "experiment/resolved_toml.hpp"
#include "experiment/sweep.hpp"
#include "experiment/toml_options.hpp"
#include "experiment/train_section.hpp"

namespace flatface {

namespace {

toml::table parse_toml(const std::string& text, const std::string& path) {
  try {
    return toml::parse(text, path);
  } catch (const toml::parse_error& err) {
    SourcePos p{path, static_cast<int>(err.source().begin.line),
                static_cast<int>(err.source().begin.column)};
    throw ConfigError(p.str() + ": " + std::string(err.description()));
  }
}

// Section `name` of the file, taken from `top` (the file's top-level keys); an absent section
// reads as an empty table.
const toml::table& take_section(const toml::table& root, const Options& top, const char* name,
                                const std::string& path) {
  static const toml::table empty;
  top.consume(name);
  auto n = root.get(name);
  return n ? require_table(*n, std::string("[") + name + "]", path) : empty;
}

// [experiment]; returns its sweep, which applies to every setup.
std::vector<SweepAxis> read_experiment_section(const toml::table& t, const std::string& path,
                                               Experiment& e) {
  Options o = to_options(t, "[experiment]", path, {"sweep"});
  std::vector<SweepAxis> sweep;
  if (auto s = t.get("sweep")) sweep = parse_sweep(*s, "[experiment]", path);
  e.name = o.get_string("name", "");
  e.seeds = o.get_ints("seeds", e.seeds);
  e.device = o.get_string("device", e.device);
  e.threads = o.get_int("threads", e.threads);
  e.output = o.get_string("output", e.name.empty() ? "" : "results/" + e.name);
  o.check_all_used();
  if (e.name.empty()) throw ConfigError(path + ": [experiment] needs a 'name'");
  if (e.seeds.empty()) throw ConfigError(o.pos_of("seeds").str() + ": seeds must not be empty");
  // Each seed is a run; a repeated one would map two runs to one id (one results file).
  for (std::size_t i = 0; i < e.seeds.size(); ++i) {
    if (std::count(e.seeds.begin(), e.seeds.begin() + i, e.seeds[i])) {
      throw ConfigError(o.pos_of("seeds").str() + ": seed " + std::to_string(e.seeds[i]) +
                        " is listed twice in [experiment] seeds");
    }
  }
  if (e.threads < 0) throw ConfigError(o.pos_of("threads").str() + ": threads must be >= 0");
  return sweep;
}

void read_plugins_section(const toml::table& t, const std::string& path, Experiment& e) {
  Options o = to_options(t, "[plugins]", path);
  e.plugin_paths = o.get_strings("paths", {});
  o.check_all_used();
}

// data.eval: a list of verification sets, each named once.
std::vector<EvalRef> read_eval_sets(const toml::node& node, const std::string& path) {
  auto arr = node.as_array();
  if (!arr) throw ConfigError(pos_of(node, path).str() + ": data.eval must be a list of tables");
  std::vector<EvalRef> sets;
  for (const auto& item : *arr) {
    EvalRef ref;
    ref.data = plugin_ref(item, "verification set", path);
    ref.name = ref.data.options.get_string("name", ref.data.plugin);
    for (const auto& other : sets) {
      if (other.name == ref.name) {
        throw ConfigError(pos_of(item, path).str() + ": two verification sets are named '" +
                          ref.name + "'; give each a distinct 'name'");
      }
    }
    sets.push_back(std::move(ref));
  }
  return sets;
}

void read_data_section(const toml::table& t, const std::string& path, Experiment& e) {
  Options keys = table_keys(t, "[data]", pos_of(t, path), path, KeyPlace::key);
  auto train = t.get("train");
  keys.consume("train");
  if (!train) throw ConfigError(path + ": [data] needs 'train = { plugin = ..., ... }'");
  e.train_data = plugin_ref(*train, "training data", path);
  keys.consume("eval");
  if (auto eval = t.get("eval")) e.eval = read_eval_sets(*eval, path);
  keys.check_all_used();
}

void read_model_section(const toml::table& t, const std::string& path, Experiment& e) {
  Options keys = table_keys(t, "[model]", pos_of(t, path), path, KeyPlace::value);
  auto bb = t.get("backbone");
  keys.consume("backbone");
  if (!bb) throw ConfigError(path + ": [model] needs 'backbone = { plugin = ..., ... }'");
  e.backbone = plugin_ref(*bb, "backbone", path);
  keys.consume("init");
  if (auto init = t.find("init"); init != t.end()) {
    auto&& [key, node] = *init;
    auto file = node.value<std::string>();
    if (!file || file->empty()) {
      throw ConfigError(key_pos(key, node, path).str() +
                        ": [model] init must be the path of a weights file (torch.save of a "
                        "state dict), not " +
                        (file ? "an empty string" : type_name(node)));
    }
    e.init = *file;
  }
  keys.consume("init_prefix");
  if (auto prefix = t.find("init_prefix"); prefix != t.end()) {
    auto&& [key, node] = *prefix;
    auto text = node.value<std::string>();
    if (!text || text->empty() || e.init.empty()) {
      throw ConfigError(key_pos(key, node, path).str() +
                        ": [model] init_prefix must be a non-empty string beside 'init' (the "
                        "start of the names to keep from it, e.g. \"model.\")");
    }
    e.init_prefix = *text;
  }
  keys.check_all_used();
}

void read_train_section(const toml::table& t, const std::string& path, Experiment& e) {
  Options o = to_options(t, "[train]", path);
  e.train = parse_train(o);
  o.check_all_used();
  e.train_options = o;
}

// One [[setup]]: its name (unique), head, perturbation (none when absent) and sweep.
Setup read_setup(const toml::node& node, const Experiment& e,
                 const std::vector<SweepAxis>& experiment_sweep, const std::string& path) {
  const auto& t = *node.as_table();
  Setup s;
  s.pos = pos_of(node, path);
  Options keys = table_keys(t, "[[setup]]", s.pos, path, KeyPlace::key);
  auto name = t["name"].value<std::string>();
  keys.consume("name");
  if (!name) throw ConfigError(s.pos.str() + ": [[setup]] needs a 'name' string");
  s.name = *name;
  for (const auto& other : e.setups) {
    if (other.name == s.name)
      throw ConfigError(s.pos.str() + ": two setups are named '" + s.name + "'");
  }
  keys.consume("head");
  keys.consume("perturbation");
  auto head = t.get("head");
  if (!head) throw ConfigError(s.pos.str() + ": setup '" + s.name + "' needs a 'head'");
  s.head = plugin_ref(*head, "head", path);
  if (auto p = t.get("perturbation")) {
    s.perturbation = plugin_ref(*p, "perturbation", path);
  } else {
    s.perturbation.plugin = "none";
    s.perturbation.options = Options("perturbation 'none'", s.pos);
  }
  keys.consume("sweep");
  s.sweep = setup_sweep(experiment_sweep, t.get("sweep"), s, e.train_options, path);
  s.bn_second_pass =
      s.perturbation.options.get_choice("bn_second_pass", s.bn_second_pass, {"freeze", "update"});
  s.epsilon = s.perturbation.options.get_choice("epsilon", s.epsilon, {"global", "local"});
  keys.check_all_used();
  return s;
}

void read_setups(const toml::table& root, const Options& top,
                 const std::vector<SweepAxis>& experiment_sweep, const std::string& path,
                 Experiment& e) {
  top.consume("setup");
  auto setups = root.get("setup");
  if (!setups || !setups->is_array_of_tables() || setups->as_array()->empty()) {
    throw ConfigError(path + ": the experiment needs at least one [[setup]]");
  }
  for (const auto& node : *setups->as_array())
    e.setups.push_back(read_setup(node, e, experiment_sweep, path));
}

}  // namespace

Experiment parse_experiment(const std::string& text, const std::string& path,
                            const std::vector<std::string>& overrides) {
  toml::table root = parse_toml(text, path);
  const SetNodes from_set = apply_overrides(root, overrides);
  const SetNodesInScope named_by_set(from_set);

  Experiment e;
  e.file = path;
  e.resolved_toml = toml_text(root);
  // Top-level keys are checked like any other table's.
  const Options top =
      table_keys(root, "the experiment file", SourcePos{path, 0, 0}, path, KeyPlace::value);
  const std::vector<SweepAxis> experiment_sweep =
      read_experiment_section(take_section(root, top, "experiment", path), path, e);
  read_plugins_section(take_section(root, top, "plugins", path), path, e);
  read_data_section(take_section(root, top, "data", path), path, e);
  read_model_section(take_section(root, top, "model", path), path, e);
  read_train_section(take_section(root, top, "train", path), path, e);
  for (const auto& axis : experiment_sweep)
    if (split_key(axis.key).first == "train") check_train_axis(e.train_options, axis);
  if (root.contains("analysis")) {
    const auto& t = take_section(root, top, "analysis", path);
    e.analysis = parse_analysis_settings(to_options(t, "[analysis]", path));
  }
  read_setups(root, top, experiment_sweep, path, e);
  top.check_all_used();
  return e;
}

Experiment load_experiment(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot open the experiment file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_experiment(ss.str(), path, overrides);
}

}  // namespace flatface
