// Sweeps (internal to experiment/): `sweep = { "head.m" = [0.3, 0.5] }` in [experiment] or a
// [[setup]], and a perturbation's `rho = [..]`, read into SweepAxis; and the option keys
// ("head.m", "train.lr") that sweeps and --only filters name.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "experiment/toml_options.hpp"

namespace flatface {

// What a swept (or --only) option key may be, for messages.
extern const char* const kSweepSections;

// "head.m" -> {"head", "m"}; "seed" -> {"seed", ""}.
std::pair<std::string, std::string> split_key(const std::string& key);

// SECTION.OPTION with SECTION one of head, perturbation, backbone, train.
bool is_option_key(const std::string& key);

// A swept value as an option value written at `pos`.
Options::Value option_value(const Options::Scalar& scalar, const SourcePos& pos);

// An integer or a float as a double; nothing for a boolean or a string.
std::optional<double> number_of(const Options::Scalar& s);

// `sweep = { "head.m" = [0.3, 0.5], ... }` (nested tables, `head = { m = [...] }`, say the same)
// of `owner` ("[experiment]", "setup 'X'"). Checks what needs no plugin: the key's form, the
// values, that no key is swept twice.
std::vector<SweepAxis> parse_sweep(const toml::node& node, const std::string& owner,
                                   const std::string& file);

// Each value of a swept [train] key read as [train] is: a wrong type or an unknown key is an
// error at the sweep.
void check_train_axis(const Options& train, const SweepAxis& axis);

// A setup's sweep: the experiment's, then the setup's own `sweep` (`own`, may be null), then its
// perturbation's `rho = [..]`. Checks that no key is swept twice and that each rho is >= 0.
std::vector<SweepAxis> setup_sweep(const std::vector<SweepAxis>& experiment_sweep,
                                   const toml::node* own, const Setup& setup, const Options& train,
                                   const std::string& file);

}  // namespace flatface
