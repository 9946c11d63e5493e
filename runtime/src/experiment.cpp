#include "experiment.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "number_text.hpp"

namespace flatface {

namespace {

// Values put in by `--set KEY=VALUE` (toml++ drops the source of a copied node): each is named by
// its --set. Set for the duration of one parse_experiment().
thread_local const std::map<const toml::node*, std::string>* overridden = nullptr;

SourcePos pos_of(const toml::node& node, const std::string& fallback_file) {
  if (overridden) {
    auto it = overridden->find(&node);
    if (it != overridden->end()) return SourcePos{"--set " + it->second, 0, 0};
  }
  const auto& src = node.source();
  SourcePos p;
  p.file = src.path ? std::string(*src.path) : fallback_file;
  p.line = static_cast<int>(src.begin.line);
  p.column = static_cast<int>(src.begin.column);
  return p;
}

const char* type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a number";
    case toml::node_type::boolean:
      return "a boolean";
    default:
      return "a date/time";
  }
}

std::optional<Options::Scalar> scalar_of(const toml::node& n) {
  if (auto v = n.as_boolean()) return Options::Scalar(v->get());
  if (auto v = n.as_integer()) return Options::Scalar(static_cast<std::int64_t>(v->get()));
  if (auto v = n.as_floating_point()) return Options::Scalar(v->get());
  if (auto v = n.as_string()) return Options::Scalar(v->get());
  return std::nullopt;
}

// Where `key = node` was written: the key's position, or the value's if the key has none.
SourcePos key_pos(const toml::key& key, const toml::node& node, const std::string& file) {
  SourcePos p = pos_of(node, file);
  if (p.line > 0 && key.source().begin.line > 0) {
    p.line = static_cast<int>(key.source().begin.line);
    p.column = static_cast<int>(key.source().begin.column);
  }
  return p;
}

// Wraps a TOML table as Options; nested tables are not plugin options.
Options to_options(const toml::table& table, const std::string& what, const std::string& file) {
  Options o(what, pos_of(table, file));
  for (auto&& [key, node] : table) {
    Options::Value value;
    value.pos = key_pos(key, node, file);
    if (auto s = scalar_of(node)) {
      std::visit([&value](const auto& x) { value.data = x; }, *s);
    } else if (auto arr = node.as_array()) {
      std::vector<Options::Scalar> list;
      for (const auto& item : *arr) {
        auto s = scalar_of(item);
        if (!s) {
          throw ConfigError(pos_of(item, file).str() + ": key '" + std::string(key.str()) +
                            "' for " + what + " must be a list of plain values, not " +
                            type_name(item));
        }
        list.push_back(*s);
      }
      value.data = std::move(list);
    } else {
      throw ConfigError(value.pos.str() + ": key '" + std::string(key.str()) + "' for " + what +
                        " must be a value or a list, not " + type_name(node));
    }
    o.set(std::string(key.str()), std::move(value));
  }
  return o;
}

const toml::table& require_table(const toml::node& n, const std::string& what,
                                 const std::string& file) {
  if (auto t = n.as_table()) return *t;
  throw ConfigError(pos_of(n, file).str() + ": " + what + " must be a table, not " + type_name(n));
}

PluginRef plugin_ref(const toml::node& n, const std::string& kind, const std::string& file) {
  const auto& table = require_table(n, kind, file);
  PluginRef ref;
  auto plugin = table["plugin"];
  if (!plugin) {
    throw ConfigError(pos_of(n, file).str() + ": " + kind + " needs a 'plugin' key");
  }
  if (!plugin.is_string()) {
    throw ConfigError(pos_of(*plugin.node(), file).str() + ": 'plugin' of " + kind +
                      " must be a string");
  }
  ref.plugin = *plugin.value<std::string>();
  ref.options = to_options(table, kind + " '" + ref.plugin + "'", file);
  ref.options.consume("plugin");
  return ref;
}

// Splits "a.b.c" into its parts.
std::vector<std::string> split_dotted(const std::string& path) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream is(path);
  while (std::getline(is, part, '.')) parts.push_back(part);
  return parts;
}

bool is_index(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// Applies one --set and returns the node it put in.
const toml::node* apply_override(toml::table& root, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError("--set " + assignment + ": expected KEY=VALUE (e.g. train.epochs=2)");
  }
  std::string key = assignment.substr(0, eq);
  std::string text = assignment.substr(eq + 1);
  toml::table parsed;
  try {
    parsed = toml::parse("value = " + text, "--set " + key);
  } catch (const toml::parse_error&) {
    // A bare word is taken as a string: --set experiment.device=cpu.
    toml::table t;
    t.insert("value", text);
    parsed = std::move(t);
  }
  auto parts = split_dotted(key);
  if (parts.empty() || std::count(parts.begin(), parts.end(), "")) {
    throw ConfigError("--set " + assignment + ": '" + key + "' is not a dotted path");
  }
  // Walks to the table (or array) that holds the last part, creating missing tables.
  toml::node* current = &root;
  std::string parent = "the file";
  auto step = [&](const std::string& part, bool create) -> toml::node* {
    if (auto t = current->as_table()) {
      if (create && !t->contains(part)) t->insert(part, toml::table{});
      return t->get(part);
    }
    if (auto a = current->as_array()) {
      if (!is_index(part) || std::stoul(part) >= a->size()) {
        throw ConfigError("--set " + assignment + ": '" + parent + "' has " +
                          std::to_string(a->size()) + " entries; '" + part +
                          "' is not the index of one");
      }
      return a->get(std::stoul(part));
    }
    throw ConfigError("--set " + assignment + ": '" + parent + "' is not a table");
  };
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    current = step(parts[i], true);
    parent = parts[i];
  }
  const auto& last = parts.back();
  const auto& value = *parsed.get("value");
  step(last, false);  // checks that `current` can hold `last`
  if (auto t = current->as_table()) {
    t->insert_or_assign(last, value);
    return t->get(last);
  }
  auto a = current->as_array();
  auto idx = std::stoul(last);
  a->replace(a->cbegin() + static_cast<std::ptrdiff_t>(idx), value);
  return a->get(idx);
}

TrainSettings parse_train(const Options& o) {
  TrainSettings t;
  t.epochs = o.get_int("epochs", t.epochs);
  t.batch_size = o.get_int("batch_size", t.batch_size);
  t.lr = o.get_double("lr", t.lr);
  t.momentum = o.get_double("momentum", t.momentum);
  t.weight_decay = o.get_double("weight_decay", t.weight_decay);
  t.decay_bn_and_bias = o.get_bool("decay_bn_and_bias", t.decay_bn_and_bias);
  t.milestones = o.get_ints("milestones", t.milestones);
  t.gamma = o.get_double("gamma", t.gamma);
  t.warmup_epochs = o.get_double("warmup_epochs", t.warmup_epochs);
  t.eval_every_steps = o.get_int("eval_every_steps", t.eval_every_steps);
  t.loader_threads = o.get_int("loader_threads", t.loader_threads);
  t.precision = o.get_choice("precision", t.precision, {"fp32", "bf16"});
  t.log_every_steps = o.get_int("log_every_steps", t.log_every_steps);
  t.flip = o.get_bool("flip", t.flip);
  auto positive = [&o](const char* key, double v) {
    if (!(v > 0)) throw ConfigError(o.pos_of(key).str() + ": train." + key + " must be positive");
  };
  positive("epochs", static_cast<double>(t.epochs));
  positive("batch_size", static_cast<double>(t.batch_size));
  positive("lr", t.lr);
  if (t.warmup_epochs < 0)
    throw ConfigError(o.pos_of("warmup_epochs").str() + ": train.warmup_epochs must be >= 0");
  return t;
}

// Numbers at 17 digits, as ids have always hashed them (not the shortest form of records).
std::string canonical_train(const TrainSettings& t) {
  std::ostringstream os;
  os.precision(17);
  os << "epochs=" << t.epochs << ",batch=" << t.batch_size << ",lr=" << t.lr
     << ",momentum=" << t.momentum << ",wd=" << t.weight_decay
     << ",decay_bn_bias=" << t.decay_bn_and_bias << ",milestones=[";
  for (auto m : t.milestones) os << m << ',';
  os << "],gamma=" << t.gamma << ",warmup=" << t.warmup_epochs << ",precision=" << t.precision;
  // Only when off, so that the ids of runs with today's default (flip on) stay what they were.
  if (!t.flip) os << ",flip=0";
  return os.str();
}

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// The table as TOML text, every float in its shortest exact form (0.333). Debian's toml++ is a
// compiled library built without TOML_FLOAT_CHARCONV (off for GCC), so it prints 17 significant
// digits; each float is therefore printed by toml++ as a marker string that the text cannot
// otherwise contain, and the markers are then replaced by the numbers.
std::string toml_text(toml::table root) {
  std::string plain;
  {
    std::ostringstream os;
    os << root;
    plain = os.str();
  }
  std::string marker = "flatface-float-";
  while (plain.find(marker) != std::string::npos) marker += '~';
  std::vector<double> floats;
  auto stand_in = [&](double v) {
    floats.push_back(v);
    return marker + std::to_string(floats.size() - 1);
  };
  std::function<void(toml::node&)> swap_floats = [&](toml::node& node) {
    if (auto t = node.as_table()) {
      std::vector<std::string> keys;
      for (auto&& [key, child] : *t) {
        if (child.is_floating_point())
          keys.emplace_back(key.str());
        else
          swap_floats(child);
      }
      for (const auto& key : keys)
        t->insert_or_assign(key, stand_in(t->get(key)->as_floating_point()->get()));
    } else if (auto a = node.as_array()) {
      for (std::size_t i = 0; i < a->size(); ++i) {
        if (auto f = a->get(i)->as_floating_point())
          a->replace(a->cbegin() + static_cast<std::ptrdiff_t>(i), stand_in(f->get()));
        else
          swap_floats(*a->get(i));
      }
    }
  };
  swap_floats(root);
  std::ostringstream os;
  os << root;
  const std::string marked = os.str();
  std::string out;
  std::size_t from = 0;
  // Each stand-in is printed quoted, as 'marker12' (a literal string) or "marker12".
  for (std::size_t at; (at = marked.find(marker, from)) != std::string::npos;) {
    const std::size_t digits = at + marker.size();
    const std::size_t close = marked.find(marked[at - 1], digits);
    const std::size_t index = std::stoul(marked.substr(digits, close - digits));
    std::string number = shortest_text(floats.at(index));
    // TOML tells a float from an integer by its '.' or exponent (inf and nan are floats).
    if (number.find_first_of(".eni") == std::string::npos) number += ".0";
    out.append(marked, from, at - 1 - from).append(number);
    from = close + 1;
  }
  return out.append(marked, from, std::string::npos);
}

}  // namespace

std::string format_rho(double rho) { return shortest_text(rho); }

Experiment parse_experiment(const std::string& text, const std::string& path,
                            const std::vector<std::string>& overrides) {
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& err) {
    SourcePos p{path, static_cast<int>(err.source().begin.line),
                static_cast<int>(err.source().begin.column)};
    throw ConfigError(p.str() + ": " + std::string(err.description()));
  }
  std::map<const toml::node*, std::string> from_set;
  for (const auto& o : overrides) {
    const std::string key = o.substr(0, o.find('='));
    // The value and, for a table or list, everything inside it.
    std::function<void(const toml::node&)> mark = [&](const toml::node& n) {
      from_set[&n] = key;
      if (auto t = n.as_table())
        for (auto&& kv : *t) mark(kv.second);
      if (auto a = n.as_array())
        for (const auto& item : *a) mark(item);
    };
    mark(*apply_override(root, o));
  }
  struct Guard {
    explicit Guard(const std::map<const toml::node*, std::string>* m) { overridden = m; }
    ~Guard() { overridden = nullptr; }
  } guard(&from_set);

  Experiment e;
  e.file = path;
  e.resolved_toml = toml_text(root);
  // Top-level keys are checked like any other table.
  Options top("the experiment file", SourcePos{path, 0, 0});
  for (auto&& [key, node] : root) {
    Options::Value v;
    v.pos = pos_of(node, path);
    v.data = std::string(type_name(node));
    top.set(std::string(key.str()), v);
  }

  const toml::table empty;
  auto section = [&](const char* name) -> const toml::table& {
    top.consume(name);
    auto n = root.get(name);
    return n ? require_table(*n, std::string("[") + name + "]", path) : empty;
  };

  // [experiment]
  {
    const auto& t = section("experiment");
    Options o = to_options(t, "[experiment]", path);
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
  }
  // [plugins]
  {
    const auto& t = section("plugins");
    Options o = to_options(t, "[plugins]", path);
    e.plugin_paths = o.get_strings("paths", {});
    o.check_all_used();
  }
  // [data]
  {
    const auto& t = section("data");
    Options known("[data]", pos_of(t, path));
    for (auto&& [key, node] : t) {
      Options::Value v;
      v.pos = key_pos(key, node, path);
      known.set(std::string(key.str()), v);
    }
    auto train = t.get("train");
    known.consume("train");
    if (!train) throw ConfigError(path + ": [data] needs 'train = { plugin = ..., ... }'");
    e.train_data = plugin_ref(*train, "training data", path);
    known.consume("eval");
    if (auto ev = t.get("eval")) {
      auto arr = ev->as_array();
      if (!arr) throw ConfigError(pos_of(*ev, path).str() + ": data.eval must be a list of tables");
      for (const auto& item : *arr) {
        EvalRef ref;
        ref.data = plugin_ref(item, "verification set", path);
        ref.name = ref.data.options.get_string("name", ref.data.plugin);
        for (const auto& other : e.eval) {
          if (other.name == ref.name) {
            throw ConfigError(pos_of(item, path).str() + ": two verification sets are named '" +
                              ref.name + "'; give each a distinct 'name'");
          }
        }
        e.eval.push_back(std::move(ref));
      }
    }
    known.check_all_used();
  }
  // [model]
  {
    const auto& t = section("model");
    auto bb = t.get("backbone");
    if (!bb) throw ConfigError(path + ": [model] needs 'backbone = { plugin = ..., ... }'");
    e.backbone = plugin_ref(*bb, "backbone", path);
    for (auto&& [key, node] : t) {
      if (key.str() == "backbone") continue;
      if (key.str() == "init") {
        auto file = node.value<std::string>();
        if (!file || file->empty()) {
          throw ConfigError(key_pos(key, node, path).str() +
                            ": [model] init must be the path of a weights file (torch.save of a "
                            "state dict), not " +
                            (file ? "an empty string" : type_name(node)));
        }
        e.init = *file;
        continue;
      }
      throw ConfigError(pos_of(node, path).str() + ": unknown key '" + std::string(key.str()) +
                        "' for [model] (known: backbone, init)");
    }
  }
  // [train]
  {
    const auto& t = section("train");
    Options o = to_options(t, "[train]", path);
    e.train = parse_train(o);
    o.check_all_used();
  }
  // [[setup]]
  top.consume("setup");
  auto setups = root.get("setup");
  if (!setups || !setups->is_array_of_tables() || setups->as_array()->empty()) {
    throw ConfigError(path + ": the experiment needs at least one [[setup]]");
  }
  for (const auto& node : *setups->as_array()) {
    const auto& t = *node.as_table();
    Setup s;
    s.pos = pos_of(node, path);
    Options known("[[setup]]", s.pos);
    for (auto&& [key, v] : t) {
      Options::Value val;
      val.pos = key_pos(key, v, path);
      known.set(std::string(key.str()), val);
    }
    auto name = t["name"].value<std::string>();
    known.consume("name");
    if (!name) throw ConfigError(s.pos.str() + ": [[setup]] needs a 'name' string");
    s.name = *name;
    for (const auto& other : e.setups) {
      if (other.name == s.name)
        throw ConfigError(s.pos.str() + ": two setups are named '" + s.name + "'");
    }
    known.consume("head");
    known.consume("perturbation");
    auto head = t.get("head");
    if (!head) throw ConfigError(s.pos.str() + ": setup '" + s.name + "' needs a 'head'");
    s.head = plugin_ref(*head, "head", path);
    if (auto p = t.get("perturbation")) {
      s.perturbation = plugin_ref(*p, "perturbation", path);
    } else {
      s.perturbation.plugin = "none";
      s.perturbation.options = Options("perturbation 'none'", s.pos);
    }
    s.rhos = s.perturbation.options.get_doubles("rho", {});
    for (std::size_t i = 0; i < s.rhos.size(); ++i) {
      const auto where = s.perturbation.options.pos_of("rho").str();
      if (!(s.rhos[i] >= 0)) throw ConfigError(where + ": rho must be >= 0");
      if (std::count(s.rhos.begin(), s.rhos.begin() + i, s.rhos[i])) {
        throw ConfigError(where + ": rho " + format_rho(s.rhos[i]) + " is listed twice for " +
                          s.perturbation.options.what());
      }
    }
    s.bn_second_pass =
        s.perturbation.options.get_choice("bn_second_pass", s.bn_second_pass, {"freeze", "update"});
    known.check_all_used();
    e.setups.push_back(std::move(s));
  }
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

std::vector<RunSpec> expand_grid(const Experiment& e) {
  std::vector<RunSpec> runs;
  // The text hashed into ids keeps numbers at 17 digits (id_text), its form since the first
  // grids, so that ids stay what they were.
  std::string shared =
      "train_data=" + e.train_data.plugin + e.train_data.options.id_text() + ";eval=";
  for (const auto& ev : e.eval)
    shared += ev.name + ":" + ev.data.plugin + ev.data.options.id_text() + ";";
  shared += "backbone=" + e.backbone.plugin + e.backbone.options.id_text();
  // Starting weights change every result. Only added when given, so that the ids of experiments
  // without them stay what they were.
  if (!e.init.empty()) shared += ";init=" + e.init;
  shared += ";train{" + canonical_train(e.train) + "}";
  for (std::size_t si = 0; si < e.setups.size(); ++si) {
    const auto& s = e.setups[si];
    std::vector<std::optional<double>> rhos;
    if (s.rhos.empty()) rhos.push_back(std::nullopt);
    for (double r : s.rhos) rhos.push_back(r);
    for (auto seed : e.seeds) {
      for (const auto& rho : rhos) {
        RunSpec r;
        r.setup = si;
        r.seed = seed;
        r.rho = rho;
        // The perturbation table with rho resolved to this run's value.
        Options pert = perturbation_options(e, r);
        std::ostringstream os;
        os << shared << ";setup=" << s.name << ";head=" << s.head.plugin
           << s.head.options.id_text() << ";perturbation=" << s.perturbation.plugin
           << pert.id_text() << ";seed=" << seed;
        r.canonical = os.str();
        char id[17];
        std::snprintf(id, sizeof id, "%016llx",
                      static_cast<unsigned long long>(fnv1a(r.canonical)));
        r.id = std::string(id, 10);
        runs.push_back(std::move(r));
      }
    }
  }
  return runs;
}

PluginRef parse_plugin_ref(const std::string& inline_table, const std::string& what) {
  toml::table root;
  try {
    root = toml::parse("value = " + inline_table, what);
  } catch (const toml::parse_error& err) {
    throw ConfigError(what + ": '" + inline_table + "' is not an inline TOML table (" +
                      std::string(err.description()) + ")");
  }
  return plugin_ref(*root.get("value"), what, what);
}

Options perturbation_options(const Experiment& e, const RunSpec& run) {
  const auto& src = e.setups[run.setup].perturbation.options;
  Options o = src.fresh_copy();
  o.consume("plugin");
  o.consume("bn_second_pass");
  if (run.rho) {
    Options::Value v;
    v.pos = src.pos_of("rho");
    v.data = *run.rho;
    o.set("rho", v);
  }
  return o;
}

}  // namespace flatface
