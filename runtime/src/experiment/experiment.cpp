#include "experiment/experiment.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "experiment/number_text.hpp"

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

// Wraps a TOML table as Options; nested tables are not plugin options. Keys in `host_keys` are
// the host's, read apart (e.g. `sweep`): they are left out, and listed as known.
Options to_options(const toml::table& table, const std::string& what, const std::string& file,
                   const std::set<std::string>& host_keys = {}) {
  Options o(what, pos_of(table, file));
  for (const auto& key : host_keys) o.consume(key);
  for (auto&& [key, node] : table) {
    if (host_keys.count(std::string(key.str()))) continue;
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

// [train] keys that change nothing a run learns (when it evaluates, logs, how many threads load).
// They are not part of run ids, so they cannot be swept.
const std::set<std::string> kRunNeutralTrainKeys{"eval_every_steps", "loader_threads",
                                                 "log_every_steps"};

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

Options::Value option_value(const Options::Scalar& scalar, const SourcePos& pos) {
  Options::Value v;
  v.pos = pos;
  std::visit([&v](const auto& x) { v.data = x; }, scalar);
  return v;
}

// An integer or a float as a double; nothing for a boolean or a string.
std::optional<double> number_of(const Options::Scalar& s) {
  if (auto d = std::get_if<double>(&s)) return *d;
  if (auto i = std::get_if<std::int64_t>(&s)) return static_cast<double>(*i);
  return std::nullopt;
}

// Numbers compare by value (1 and 1.0 are one value); otherwise type and value must match.
bool same_value(const Options::Scalar& a, const Options::Scalar& b) {
  auto x = number_of(a), y = number_of(b);
  if (x && y) return *x == *y;
  return a == b;
}

// "head.m" -> {"head", "m"}.
std::pair<std::string, std::string> split_key(const std::string& key) {
  auto dot = key.find('.');
  return {key.substr(0, dot), dot == std::string::npos ? "" : key.substr(dot + 1)};
}

const char* kSweepSections = "head.OPTION, perturbation.OPTION, backbone.OPTION or train.KEY";

// `sweep = { "head.m" = [0.3, 0.5], ... }` (nested tables, `head = { m = [...] }`, say the same).
// Checks what needs no plugin: the key's form, the values, that no key is swept twice.
std::vector<SweepAxis> parse_sweep(const toml::node& node, const std::string& owner,
                                   const std::string& file) {
  const auto& table = require_table(node, owner + " sweep", file);
  std::vector<SweepAxis> axes;
  std::function<void(const toml::table&, const std::string&)> walk =
      [&](const toml::table& t, const std::string& prefix) {
        for (auto&& [k, child] : t) {
          const std::string key = prefix + std::string(k.str());
          const SourcePos pos = key_pos(k, child, file);
          if (auto sub = child.as_table()) {
            walk(*sub, key + ".");
            continue;
          }
          auto [section, option] = split_key(key);
          if (option.empty() || option.find('.') != std::string::npos ||
              !(section == "head" || section == "perturbation" || section == "backbone" ||
                section == "train"))
            throw ConfigError(pos.str() + ": cannot sweep '" + key + "' in " + owner +
                              ": a swept key is " + kSweepSections);
          if (option == "plugin" ||
              (section == "perturbation" && (option == "bn_second_pass" || option == "epsilon")))
            throw ConfigError(pos.str() + ": '" + key + "' cannot be swept (" + owner +
                              "); write one setup per value");
          if (section == "train" && kRunNeutralTrainKeys.count(option))
            throw ConfigError(pos.str() + ": '" + key +
                              "' changes nothing a run learns (it is not part of run ids), so it "
                              "cannot be swept; set it once in [train]");
          auto arr = child.as_array();
          if (!arr)
            throw ConfigError(pos.str() + ": sweep of '" + key + "' in " + owner +
                              " must be a list of values, not " + type_name(child));
          if (arr->empty())
            throw ConfigError(pos.str() + ": sweep of '" + key + "' in " + owner +
                              " has no values");
          SweepAxis axis{key, {}, pos};
          for (const auto& item : *arr) {
            auto value = scalar_of(item);
            if (!value)
              throw ConfigError(pos_of(item, file).str() + ": sweep of '" + key + "' in " + owner +
                                " must list plain values, not " + type_name(item));
            for (const auto& earlier : axis.values)
              if (same_value(earlier, *value))
                throw ConfigError(pos_of(item, file).str() + ": value " + format_value(*value) +
                                  " is listed twice in the sweep of '" + key + "' in " + owner);
            axis.values.push_back(*value);
          }
          for (const auto& other : axes)
            if (other.key == key)
              throw ConfigError(pos.str() + ": '" + key + "' is swept twice in " + owner +
                                " (also at " + other.pos.str() + ")");
          axes.push_back(std::move(axis));
        }
      };
  walk(table, "");
  return axes;
}

// Each value of a swept [train] key read as [train] is: a wrong type or an unknown key is an
// error at the sweep.
void check_train_axis(const Options& train, const SweepAxis& axis) {
  const std::string key = split_key(axis.key).second;
  for (const auto& value : axis.values) {
    Options o = train.fresh_copy();
    o.set(key, option_value(value, axis.pos));
    parse_train(o);
    o.check_all_used();
  }
}

// `rho` of a perturbation table as given: a list is a sweep of perturbation.rho (returned), a
// single number stays an option. Either way each rho is >= 0 and listed once.
std::optional<SweepAxis> rho_list(const PluginRef& perturbation) {
  const Options& o = perturbation.options;
  const auto rhos = o.get_doubles("rho", {});
  const auto where = o.pos_of("rho").str();
  for (std::size_t i = 0; i < rhos.size(); ++i) {
    if (!(rhos[i] >= 0)) throw ConfigError(where + ": rho must be >= 0");
    if (std::count(rhos.begin(), rhos.begin() + static_cast<std::ptrdiff_t>(i), rhos[i]))
      throw ConfigError(where + ": rho " + format_rho(rhos[i]) + " is listed twice for " +
                        o.what());
  }
  const auto* written = o.find("rho");
  if (!written || !std::holds_alternative<std::vector<Options::Scalar>>(written->data))
    return std::nullopt;
  SweepAxis axis{"perturbation.rho", {}, o.pos_of("rho")};
  for (double r : rhos) axis.values.emplace_back(r);
  return axis;
}

// The options of one section of a run's setup ("head", "perturbation", "backbone") or [train],
// as the run sees them; a fresh copy, so that reading it marks nothing in `e`.
Options section_options(const Experiment& e, std::size_t setup, const std::string& section) {
  if (section == "head") return e.setups[setup].head.options.fresh_copy();
  if (section == "perturbation") return e.setups[setup].perturbation.options.fresh_copy();
  if (section == "backbone") return e.backbone.options.fresh_copy();
  return e.train_options.fresh_copy();
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

}  // namespace

std::string format_rho(double rho) {
  return shortest_text(rho);
}

std::string format_value(const Options::Scalar& value) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::int64_t>) {
          return std::to_string(v);
        } else if constexpr (std::is_same_v<T, double>) {
          return shortest_text(v);
        } else {
          return v;
        }
      },
      value);
}

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
  std::vector<SweepAxis> experiment_sweep;  // applies to every setup
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
    Options o = to_options(t, "[experiment]", path, {"sweep"});
    if (auto sweep = t.get("sweep")) experiment_sweep = parse_sweep(*sweep, "[experiment]", path);
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
    e.train_options = o;
  }
  for (const auto& axis : experiment_sweep)
    if (split_key(axis.key).first == "train") check_train_axis(e.train_options, axis);
  // [analysis]
  if (root.contains("analysis")) {
    const auto& t = section("analysis");
    e.analysis = parse_analysis_settings(to_options(t, "[analysis]", path));
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
    known.consume("sweep");
    s.sweep = experiment_sweep;
    if (auto sweep = t.get("sweep")) {
      for (auto& axis : parse_sweep(*sweep, "setup '" + s.name + "'", path)) {
        if (split_key(axis.key).first == "train") check_train_axis(e.train_options, axis);
        s.sweep.push_back(std::move(axis));
      }
    }
    if (auto rho = rho_list(s.perturbation)) s.sweep.push_back(std::move(*rho));
    for (std::size_t i = 0; i < s.sweep.size(); ++i) {
      const auto& axis = s.sweep[i];
      for (std::size_t j = 0; j < i; ++j)
        if (s.sweep[j].key == axis.key)
          throw ConfigError(axis.pos.str() + ": '" + axis.key + "' is swept twice for setup '" +
                            s.name + "' (also at " + s.sweep[j].pos.str() + ")");
      if (axis.key != "perturbation.rho") continue;
      for (const auto& v : axis.values)
        if (auto d = number_of(v); d && !(*d >= 0))
          throw ConfigError(axis.pos.str() + ": rho must be >= 0");
    }
    s.bn_second_pass =
        s.perturbation.options.get_choice("bn_second_pass", s.bn_second_pass, {"freeze", "update"});
    s.epsilon = s.perturbation.options.get_choice("epsilon", s.epsilon, {"global", "local"});
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
    const auto& s = e.setups[si];
    // The product of the axes, the last one turning fastest.
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
    for (auto seed : e.seeds) {
      for (const auto& combo : combos) {
        RunSpec r;
        r.setup = si;
        r.seed = seed;
        r.swept = combo;
        const Experiment re = run_experiment(e, r);
        const Setup& rs = re.setups[si];
        Options pert = perturbation_options(re, r);
        if (const auto* rho = pert.find("rho")) {
          if (auto d = std::get_if<double>(&rho->data)) r.rho = *d;
          if (auto i = std::get_if<std::int64_t>(&rho->data)) r.rho = static_cast<double>(*i);
        }
        // The text hashed into the id; numbers at 17 digits (id_text), its form since the first
        // grids, so that ids stay what they were.
        std::ostringstream os;
        os << "train_data=" << re.train_data.plugin << re.train_data.options.id_text() << ";eval=";
        for (const auto& ev : re.eval)
          os << ev.name << ":" << ev.data.plugin << ev.data.options.id_text() << ";";
        os << "backbone=" << re.backbone.plugin << re.backbone.options.id_text();
        // Starting weights change every result. Only added when given, so that the ids of
        // experiments without them stay what they were.
        if (!re.init.empty()) os << ";init=" << re.init;
        os << ";train{" << canonical_train(re.train) << "}";
        os << ";setup=" << rs.name << ";head=" << rs.head.plugin << rs.head.options.id_text()
           << ";perturbation=" << rs.perturbation.plugin << pert.id_text() << ";seed=" << seed;
        r.canonical = os.str();
        char id[17];
        std::snprintf(id, sizeof id, "%016llx",
                      static_cast<unsigned long long>(fnv1a(r.canonical)));
        r.id = std::string(id, 10);
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

std::string swept_label(const RunSpec& run) {
  std::string text;
  for (const auto& v : run.swept)
    if (v.key != "perturbation.rho")
      text += (text.empty() ? "" : " ") + v.key + "=" + format_value(v.value);
  return text;
}

std::string describe_run(const Experiment& e, const RunSpec& run) {
  std::string text = e.setups[run.setup].name + " seed=" + std::to_string(run.seed);
  if (run.rho) text += " rho=" + format_rho(*run.rho);
  const std::string swept = swept_label(run);
  return swept.empty() ? text : text + " " + swept;
}

std::vector<RunSpec> select_runs(const Experiment& e, const std::vector<RunSpec>& runs,
                                 const std::vector<std::string>& only) {
  struct Filter {
    std::string text, key, value;
  };
  std::vector<Filter> filters;
  for (const auto& f : only) {
    auto eq = f.find('=');
    if (eq == std::string::npos || eq == 0)
      throw ConfigError("--only " + f + ": expected KEY=VALUE (e.g. seed=0 or head.m=0.3)");
    Filter filter{f, f.substr(0, eq), f.substr(eq + 1)};
    static const std::set<std::string> plain{"setup", "seed", "rho", "id"};
    auto [section, option] = split_key(filter.key);
    const bool option_key = !option.empty() && option.find('.') == std::string::npos &&
                            (section == "head" || section == "perturbation" ||
                             section == "backbone" || section == "train");
    if (!plain.count(filter.key) && !option_key)
      throw ConfigError("--only " + f + ": unknown key '" + filter.key +
                        "' (known: setup, seed, rho, id, or an option such as " + kSweepSections +
                        ")");
    filters.push_back(std::move(filter));
  }
  // Each run's value of an option filter, as the run sees it (swept or written).
  auto option_of = [&](const RunSpec& r, const std::string& key) -> std::optional<Options::Scalar> {
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
  };
  for (const auto& f : filters) {
    if (f.key.find('.') == std::string::npos) continue;
    const bool anywhere = std::any_of(runs.begin(), runs.end(),
                                      [&](const RunSpec& r) { return option_of(r, f.key); });
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
  std::vector<RunSpec> out;
  for (const auto& r : runs) {
    bool keep = true;
    for (const auto& f : filters) {
      if (f.key == "setup") {
        keep = e.setups[r.setup].name == f.value;
      } else if (f.key == "seed") {
        keep = std::to_string(r.seed) == f.value;
      } else if (f.key == "id") {
        keep = r.id == f.value;
      } else if (f.key == "rho") {
        keep = r.rho && matches(parse_scalar_text(f.value), *r.rho);
      } else {
        auto have = option_of(r, f.key);
        keep = have && matches(parse_scalar_text(f.value), *have);
      }
      if (!keep) break;
    }
    if (keep) out.push_back(r);
  }
  return out;
}

namespace {

// `inline_table` parsed as the value of a key `value` in a document of its own.
toml::table parse_inline_table(const std::string& inline_table, const std::string& what) {
  try {
    return toml::parse("value = " + inline_table, what);
  } catch (const toml::parse_error& err) {
    throw ConfigError(what + ": '" + inline_table + "' is not an inline TOML table (" +
                      std::string(err.description()) + ")");
  }
}

}  // namespace

PluginRef parse_plugin_ref(const std::string& inline_table, const std::string& what) {
  const toml::table root = parse_inline_table(inline_table, what);
  return plugin_ref(*root.get("value"), what, what);
}

Options parse_options_table(const std::string& inline_table, const std::string& what) {
  const toml::table root = parse_inline_table(inline_table, what);
  return to_options(require_table(*root.get("value"), what, what), what, what);
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
