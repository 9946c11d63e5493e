#include "experiment/toml_options.hpp"

namespace flatface {

namespace {

// The nodes of the --set overrides of the parse_experiment() running on this thread, if any.
thread_local const SetNodes* set_nodes = nullptr;

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

SetNodesInScope::SetNodesInScope(const SetNodes& nodes) {
  set_nodes = &nodes;
}

SetNodesInScope::~SetNodesInScope() {
  set_nodes = nullptr;
}

SourcePos pos_of(const toml::node& node, const std::string& fallback_file) {
  if (set_nodes) {
    auto it = set_nodes->find(&node);
    if (it != set_nodes->end()) return SourcePos{"--set " + it->second, 0, 0};
  }
  const auto& src = node.source();
  SourcePos p;
  p.file = src.path ? std::string(*src.path) : fallback_file;
  p.line = static_cast<int>(src.begin.line);
  p.column = static_cast<int>(src.begin.column);
  return p;
}

SourcePos key_pos(const toml::key& key, const toml::node& node, const std::string& file) {
  SourcePos p = pos_of(node, file);
  if (p.line > 0 && key.source().begin.line > 0) {
    p.line = static_cast<int>(key.source().begin.line);
    p.column = static_cast<int>(key.source().begin.column);
  }
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

Options to_options(const toml::table& table, const std::string& what, const std::string& file,
                   const std::set<std::string>& host_keys) {
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

Options table_keys(const toml::table& table, const std::string& what, const SourcePos& pos,
                   const std::string& file, KeyPlace place) {
  Options keys(what, pos);
  for (auto&& [key, node] : table) {
    Options::Value v;
    v.pos = place == KeyPlace::key ? key_pos(key, node, file) : pos_of(node, file);
    keys.set(std::string(key.str()), v);
  }
  return keys;
}

PluginRef parse_plugin_ref(const std::string& inline_table, const std::string& what) {
  const toml::table root = parse_inline_table(inline_table, what);
  return plugin_ref(*root.get("value"), what, what);
}

Options parse_options_table(const std::string& inline_table, const std::string& what) {
  const toml::table root = parse_inline_table(inline_table, what);
  return to_options(require_table(*root.get("value"), what, what), what, what);
}

}  // namespace flatface
