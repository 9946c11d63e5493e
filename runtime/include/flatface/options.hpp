// The key/value table a plugin receives. Plugins see no TOML types: values are plain C++ and each
// remembers where it was written, so a wrong key or type can be reported as file:line:col.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace flatface {

struct SourcePos {
  std::string file;
  int line = 0;
  int column = 0;
  std::string str() const;  // "file:line:col" (or just "file", or "<input>")
};

// A user-facing error: what failed, where, what was expected. The CLI prints what() and exits 2.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A failure while running (bad data file, non-finite loss, ...). The CLI exits 1.
class RuntimeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Options {
 public:
  using Scalar = std::variant<bool, std::int64_t, double, std::string>;
  struct Value {
    std::variant<bool, std::int64_t, double, std::string, std::vector<Scalar>> data;
    SourcePos pos;
  };

  Options() = default;
  // `what` names the owner in messages, e.g. "perturbation 'sam'"; `pos` is where the table starts.
  Options(std::string what, SourcePos pos) : state_(std::make_shared<State>()) {
    state_->what = std::move(what);
    state_->pos = std::move(pos);
  }

  void set(const std::string& key, Value value);
  bool has(const std::string& key) const;

  // Typed getters. Reading a key marks it as used; asking for a missing key with a default marks
  // it as known, so that "unknown key" messages can list what the plugin understands.
  bool get_bool(const std::string& key, bool fallback) const;
  std::int64_t get_int(const std::string& key, std::int64_t fallback) const;
  double get_double(const std::string& key, double fallback) const;  // accepts integers
  std::string get_string(const std::string& key, const std::string& fallback) const;
  std::vector<double> get_doubles(const std::string& key, std::vector<double> fallback) const;
  std::vector<std::int64_t> get_ints(const std::string& key, std::vector<std::int64_t> fallback) const;
  std::vector<std::string> get_strings(const std::string& key, std::vector<std::string> fallback) const;

  // Required variants: a missing key is an error naming the owner.
  std::string require_string(const std::string& key) const;

  // A string that must be one of `choices`.
  std::string get_choice(const std::string& key, const std::string& fallback,
                         const std::vector<std::string>& choices) const;

  // Throws ConfigError for the first key nobody read:
  // "x.toml:14:3: unknown key 'rhoo' for perturbation 'sam' (known: adaptive, rho)".
  void check_all_used() const;

  // Marks a key as consumed by the host (e.g. `plugin`, `name`).
  void consume(const std::string& key) const;

  const std::string& what() const;
  const SourcePos& pos() const;
  SourcePos pos_of(const std::string& key) const;
  std::vector<std::string> keys() const;
  // A copy with fresh read-tracking (used when one table configures several objects).
  Options fresh_copy() const;
  // Canonical text of all values, sorted by key, numbers in their shortest exact form (0.333):
  // for labels and records, e.g. the `head` attribute of a result file.
  std::string canonical() const;
  // The same with numbers at 17 significant digits (0.33300000000000002): the text run ids have
  // always been hashed from, kept so that existing ids (and the results saved under them) stay.
  std::string id_text() const;
  const Value* find(const std::string& key) const;

 private:
  struct State {
    std::string what;
    SourcePos pos;
    std::map<std::string, Value> values;
    std::set<std::string> used;
    std::set<std::string> known;
  };
  const Value& lookup(const std::string& key) const;
  [[noreturn]] void type_error(const std::string& key, const char* expected) const;
  State& state() const;
  std::shared_ptr<State> state_;
};

}  // namespace flatface
