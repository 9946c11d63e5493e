#include "experiment/overrides.hpp"

#include <algorithm>
#include <functional>
#include <sstream>

namespace flatface {

namespace {

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

// The VALUE of an assignment as a one-key document { value = VALUE }.
toml::table parse_value(const std::string& key, const std::string& text) {
  try {
    return toml::parse("value = " + text, "--set " + key);
  } catch (const toml::parse_error&) {
    // A bare word is taken as a string: --set experiment.device=cpu.
    toml::table t;
    t.insert("value", text);
    return t;
  }
}

// Applies one --set and returns the node it put in.
const toml::node* apply_override(toml::table& root, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError("--set " + assignment + ": expected KEY=VALUE (e.g. train.epochs=2)");
  }
  std::string key = assignment.substr(0, eq);
  const toml::table parsed = parse_value(key, assignment.substr(eq + 1));
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

}  // namespace

SetNodes apply_overrides(toml::table& root, const std::vector<std::string>& overrides) {
  SetNodes from_set;
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
  return from_set;
}

}  // namespace flatface
