#include "experiment/sweep.hpp"

#include <algorithm>
#include <functional>

#include "experiment/train_section.hpp"

namespace flatface {

const char* const kSweepSections = "head.OPTION, perturbation.OPTION, backbone.OPTION or train.KEY";

namespace {

// Numbers compare by value (1 and 1.0 are one value); otherwise type and value must match.
bool same_value(const Options::Scalar& a, const Options::Scalar& b) {
  auto x = number_of(a), y = number_of(b);
  if (x && y) return *x == *y;
  return a == b;
}

// A key that may not be swept: not an option, the plugin's name, a host setting of the
// perturbation table, or a [train] key outside run ids.
void check_sweep_key(const std::string& key, const SourcePos& pos, const std::string& owner) {
  auto [section, option] = split_key(key);
  if (!is_option_key(key))
    throw ConfigError(pos.str() + ": cannot sweep '" + key + "' in " + owner + ": a swept key is " +
                      kSweepSections);
  if (option == "plugin" ||
      (section == "perturbation" && (option == "bn_second_pass" || option == "epsilon")))
    throw ConfigError(pos.str() + ": '" + key + "' cannot be swept (" + owner +
                      "); write one setup per value");
  if (section == "train" && kRunNeutralTrainKeys.count(option))
    throw ConfigError(pos.str() + ": '" + key +
                      "' changes nothing a run learns (it is not part of run ids), so it "
                      "cannot be swept; set it once in [train]");
}

// The values of one swept key: a non-empty list of plain values, none twice.
SweepAxis sweep_axis(const std::string& key, const SourcePos& pos, const toml::node& list,
                     const std::string& owner, const std::string& file) {
  auto arr = list.as_array();
  if (!arr)
    throw ConfigError(pos.str() + ": sweep of '" + key + "' in " + owner +
                      " must be a list of values, not " + type_name(list));
  if (arr->empty())
    throw ConfigError(pos.str() + ": sweep of '" + key + "' in " + owner + " has no values");
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
  return axis;
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

}  // namespace

std::pair<std::string, std::string> split_key(const std::string& key) {
  auto dot = key.find('.');
  return {key.substr(0, dot), dot == std::string::npos ? "" : key.substr(dot + 1)};
}

bool is_option_key(const std::string& key) {
  auto [section, option] = split_key(key);
  return !option.empty() && option.find('.') == std::string::npos &&
         (section == "head" || section == "perturbation" || section == "backbone" ||
          section == "train");
}

Options::Value option_value(const Options::Scalar& scalar, const SourcePos& pos) {
  Options::Value v;
  v.pos = pos;
  std::visit([&v](const auto& x) { v.data = x; }, scalar);
  return v;
}

std::optional<double> number_of(const Options::Scalar& s) {
  if (auto d = std::get_if<double>(&s)) return *d;
  if (auto i = std::get_if<std::int64_t>(&s)) return static_cast<double>(*i);
  return std::nullopt;
}

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
          check_sweep_key(key, pos, owner);
          SweepAxis axis = sweep_axis(key, pos, child, owner, file);
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

void check_train_axis(const Options& train, const SweepAxis& axis) {
  const std::string key = split_key(axis.key).second;
  for (const auto& value : axis.values) {
    Options o = train.fresh_copy();
    o.set(key, option_value(value, axis.pos));
    parse_train(o);
    o.check_all_used();
  }
}

std::vector<SweepAxis> setup_sweep(const std::vector<SweepAxis>& experiment_sweep,
                                   const toml::node* own, const Setup& setup, const Options& train,
                                   const std::string& file) {
  std::vector<SweepAxis> sweep = experiment_sweep;
  if (own) {
    for (auto& axis : parse_sweep(*own, "setup '" + setup.name + "'", file)) {
      if (split_key(axis.key).first == "train") check_train_axis(train, axis);
      sweep.push_back(std::move(axis));
    }
  }
  if (auto rho = rho_list(setup.perturbation)) sweep.push_back(std::move(*rho));
  for (std::size_t i = 0; i < sweep.size(); ++i) {
    const auto& axis = sweep[i];
    for (std::size_t j = 0; j < i; ++j)
      if (sweep[j].key == axis.key)
        throw ConfigError(axis.pos.str() + ": '" + axis.key + "' is swept twice for setup '" +
                          setup.name + "' (also at " + sweep[j].pos.str() + ")");
    if (axis.key != "perturbation.rho") continue;
    for (const auto& v : axis.values)
      if (auto d = number_of(v); d && !(*d >= 0))
        throw ConfigError(axis.pos.str() + ": rho must be >= 0");
  }
  return sweep;
}

}  // namespace flatface
