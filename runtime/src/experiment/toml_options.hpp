// TOML nodes read as the host reads them (internal to experiment/): each value remembers where it
// was written, tables become Options, and a table's keys can be checked like any option table.
#pragma once

#include <toml++/toml.h>

#include <map>
#include <optional>
#include <set>
#include <string>

#include "experiment/experiment.hpp"

namespace flatface {

// Nodes that `--set KEY=VALUE` put in, each with its KEY (toml++ drops the source of a copied
// node, so they are named by their --set instead).
using SetNodes = std::map<const toml::node*, std::string>;

// While one lives, pos_of() on this thread reports a node of `nodes` as "--set KEY".
class SetNodesInScope {
 public:
  explicit SetNodesInScope(const SetNodes& nodes);
  ~SetNodesInScope();
  SetNodesInScope(const SetNodesInScope&) = delete;
  SetNodesInScope& operator=(const SetNodesInScope&) = delete;
};

// Where `node` was written ("x.toml:3:7", or "--set KEY"); `fallback_file` when toml++ knows none.
SourcePos pos_of(const toml::node& node, const std::string& fallback_file);

// Where `key = node` was written: the key's position, or the value's if the key has none.
SourcePos key_pos(const toml::key& key, const toml::node& node, const std::string& file);

// "a table", "an integer", ...: a node's type as messages name it.
const char* type_name(const toml::node& n);

// A boolean, integer, float or string as a plain value; nothing for tables, arrays, dates.
std::optional<Options::Scalar> scalar_of(const toml::node& n);

// Wraps a TOML table as Options; nested tables are not plugin options. Keys in `host_keys` are
// the host's, read apart (e.g. `sweep`): they are left out, and listed as known.
Options to_options(const toml::table& table, const std::string& what, const std::string& file,
                   const std::set<std::string>& host_keys = {});

const toml::table& require_table(const toml::node& n, const std::string& what,
                                 const std::string& file);

// A `{ plugin = "...", ... }` table; `kind` names it in messages ("head", "backbone").
PluginRef plugin_ref(const toml::node& n, const std::string& kind, const std::string& file);

// Where an unknown key of a table is reported: at the key, or at its value (where the file's top
// level and [model] have always reported theirs).
enum class KeyPlace { key, value };

// The keys of a table whose entries are not plain options (tables, lists of tables), as Options
// that the section reading the table consumes key by key; check_all_used() then names the first
// key nothing read: "x.toml:3:1: unknown key 'trian' for [data] (known: eval, train)".
Options table_keys(const toml::table& table, const std::string& what, const SourcePos& pos,
                   const std::string& file, KeyPlace place);

}  // namespace flatface
