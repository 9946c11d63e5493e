#include "flatface/options.hpp"

#include <cmath>
#include <sstream>

#include "experiment/number_text.hpp"

namespace flatface {

std::string SourcePos::str() const {
  if (file.empty()) return "<input>";
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

namespace {

std::string join(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Numbers at 17 significant digits for run ids (their historical form), else shortest.
void print_scalar(std::ostream& os, const Options::Scalar& s, bool id_digits) {
  std::visit(
      [&os, id_digits](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>) {
          os << (v ? "true" : "false");
        } else if constexpr (std::is_same_v<T, std::string>) {
          os << '"' << v << '"';
        } else if constexpr (std::is_same_v<T, double>) {
          if (id_digits) {
            std::ostringstream tmp;
            tmp.precision(17);
            tmp << v;
            os << tmp.str();
          } else {
            os << shortest_text(v);
          }
        } else {
          os << v;
        }
      },
      s);
}

}  // namespace

Options::State& Options::state() const {
  if (!state_) const_cast<Options*>(this)->state_ = std::make_shared<State>();
  return *state_;
}

void Options::set(const std::string& key, Value value) { state().values[key] = std::move(value); }

bool Options::has(const std::string& key) const { return state().values.count(key) > 0; }

const Options::Value* Options::find(const std::string& key) const {
  auto& s = state();
  s.known.insert(key);
  auto it = s.values.find(key);
  if (it == s.values.end()) return nullptr;
  s.used.insert(key);
  return &it->second;
}

const Options::Value& Options::lookup(const std::string& key) const {
  const Value* v = find(key);
  if (!v) throw ConfigError(pos().str() + ": missing key '" + key + "' for " + what());
  return *v;
}

void Options::type_error(const std::string& key, const char* expected) const {
  throw ConfigError(pos_of(key).str() + ": key '" + key + "' for " + what() + " must be " +
                    expected);
}

void Options::consume(const std::string& key) const {
  state().known.insert(key);
  state().used.insert(key);
}

bool Options::get_bool(const std::string& key, bool fallback) const {
  const Value* v = find(key);
  if (!v) return fallback;
  if (auto b = std::get_if<bool>(&v->data)) return *b;
  type_error(key, "a boolean");
}

std::int64_t Options::get_int(const std::string& key, std::int64_t fallback) const {
  const Value* v = find(key);
  if (!v) return fallback;
  if (auto i = std::get_if<std::int64_t>(&v->data)) return *i;
  type_error(key, "an integer");
}

double Options::get_double(const std::string& key, double fallback) const {
  const Value* v = find(key);
  if (!v) return fallback;
  if (auto d = std::get_if<double>(&v->data)) return *d;
  if (auto i = std::get_if<std::int64_t>(&v->data)) return static_cast<double>(*i);
  type_error(key, "a number");
}

std::string Options::get_string(const std::string& key, const std::string& fallback) const {
  const Value* v = find(key);
  if (!v) return fallback;
  if (auto s = std::get_if<std::string>(&v->data)) return *s;
  type_error(key, "a string");
}

std::string Options::require_string(const std::string& key) const {
  const Value& v = lookup(key);
  if (auto s = std::get_if<std::string>(&v.data)) return *s;
  type_error(key, "a string");
}

std::string Options::get_choice(const std::string& key, const std::string& fallback,
                                const std::vector<std::string>& choices) const {
  std::string value = get_string(key, fallback);
  for (const auto& c : choices)
    if (c == value) return value;
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  throw ConfigError(pos_of(key).str() + ": key '" + key + "' for " + what() + " is '" + value +
                    "'; expected one of: " + list);
}

namespace {

template <typename T>
bool scalar_as(const Options::Scalar& s, T& out) {
  if constexpr (std::is_same_v<T, double>) {
    if (auto d = std::get_if<double>(&s)) return out = *d, true;
    if (auto i = std::get_if<std::int64_t>(&s)) return out = static_cast<double>(*i), true;
    return false;
  } else {
    if (auto v = std::get_if<T>(&s)) return out = *v, true;
    return false;
  }
}

template <typename T>
std::vector<T> list_of(const Options& o, const Options::Value* v, const std::string& key,
                       std::vector<T> fallback, const char* expected,
                       void (Options::*fail)(const std::string&, const char*) const) {
  if (!v) return fallback;
  std::vector<T> out;
  T one{};
  // A single value where a list is expected is a list of one.
  if (auto list = std::get_if<std::vector<Options::Scalar>>(&v->data)) {
    for (const auto& s : *list) {
      if (!scalar_as(s, one)) (o.*fail)(key, expected);
      out.push_back(one);
    }
    return out;
  }
  Options::Scalar single;
  std::visit(
      [&](const auto& x) {
        using X = std::decay_t<decltype(x)>;
        if constexpr (!std::is_same_v<X, std::vector<Options::Scalar>>) single = x;
      },
      v->data);
  if (!scalar_as(single, one)) (o.*fail)(key, expected);
  out.push_back(one);
  return out;
}

}  // namespace

std::vector<double> Options::get_doubles(const std::string& key,
                                         std::vector<double> fallback) const {
  return list_of<double>(*this, find(key), key, std::move(fallback), "a number or a list of numbers",
                         &Options::type_error);
}

std::vector<std::int64_t> Options::get_ints(const std::string& key,
                                            std::vector<std::int64_t> fallback) const {
  return list_of<std::int64_t>(*this, find(key), key, std::move(fallback),
                               "an integer or a list of integers", &Options::type_error);
}

std::vector<std::string> Options::get_strings(const std::string& key,
                                              std::vector<std::string> fallback) const {
  return list_of<std::string>(*this, find(key), key, std::move(fallback),
                              "a string or a list of strings", &Options::type_error);
}

void Options::check_all_used() const {
  const auto& s = state();
  for (const auto& [key, value] : s.values) {
    if (s.used.count(key)) continue;
    std::set<std::string> known = s.known;
    std::string hint = known.empty() ? "it takes no options" : "known: " + join(known);
    throw ConfigError(value.pos.str() + ": unknown key '" + key + "' for " + s.what + " (" + hint +
                      ")");
  }
}

const std::string& Options::what() const { return state().what; }
const SourcePos& Options::pos() const { return state().pos; }

SourcePos Options::pos_of(const std::string& key) const {
  auto it = state().values.find(key);
  return it == state().values.end() ? pos() : it->second.pos;
}

std::vector<std::string> Options::keys() const {
  std::vector<std::string> out;
  for (const auto& kv : state().values) out.push_back(kv.first);
  return out;
}

Options Options::fresh_copy() const {
  Options copy(what(), pos());
  copy.state_->values = state().values;
  return copy;
}

namespace {

std::string canonical_text(const std::map<std::string, Options::Value>& values, bool id_digits) {
  std::ostringstream os;
  os << '{';
  bool first = true;
  for (const auto& [key, value] : values) {
    os << (first ? "" : ",") << key << '=';
    first = false;
    std::visit(
        [&os, id_digits](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::vector<Options::Scalar>>) {
            os << '[';
            for (std::size_t i = 0; i < v.size(); ++i) {
              if (i) os << ',';
              print_scalar(os, v[i], id_digits);
            }
            os << ']';
          } else {
            print_scalar(os, Options::Scalar(v), id_digits);
          }
        },
        value.data);
  }
  os << '}';
  return os.str();
}

}  // namespace

std::string Options::canonical() const {
  return canonical_text(state().values, false);
}

std::string Options::id_text() const {
  return canonical_text(state().values, true);
}

}  // namespace flatface
