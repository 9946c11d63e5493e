// How runs and swept values are written for people: labels, --only values, result attributes.
#include <type_traits>

#include "experiment/experiment.hpp"
#include "experiment/number_text.hpp"

namespace flatface {

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

}  // namespace flatface
