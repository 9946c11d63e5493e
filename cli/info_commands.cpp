// flatface plugins | validate, and the shared helpers of common.hpp.
#include <sched.h>
#include <torch/cuda.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <tuple>

#include "common.hpp"
#include "flatface/torch_compat.hpp"
#include "flatface/version.hpp"
#include "formats/state_dict.hpp"
#include "plugin_host/factory.hpp"

namespace flatface::cli {

void ExperimentArgs::add_to(CLI::App& cmd) {
  cmd.add_option("experiment", file, "Experiment TOML file")->required()->check(CLI::ExistingFile);
  cmd.add_option("--set", overrides, "Override KEY=VALUE (dotted path, TOML value), repeatable");
}

std::unique_ptr<Registry> open_registry(const Globals& g, const Experiment* e) {
  std::vector<std::string> extra = g.plugin_paths;
  if (e) extra.insert(extra.end(), e->plugin_paths.begin(), e->plugin_paths.end());
  return flatface::open_registry(extra);
}

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

CLI::Validator positive_seconds() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (end != text.c_str() && *end == '\0' && std::isfinite(v) && v > 0) return "";
        return "expected a positive number of seconds, got '" + text + "'";
      },
      "SECONDS");
}

int apply_threads(const Globals& g, const Experiment* e) {
  int n = g.threads;
  if (n == 0 && e) n = static_cast<int>(e->threads);
  if (n == 0) n = available_cores();
  torch::set_num_threads(n);
  return n;
}

nlohmann::ordered_json json_number(double v, int digits) {
  if (!std::isfinite(v)) return nullptr;
  char text[32];
  std::snprintf(text, sizeof text, "%.*g", digits, v);
  const double rounded = std::strtod(text, nullptr);
  // A whole number prints as one (64, not 64.0), as %g did before: scripts compare the text too.
  if (rounded == std::floor(rounded) && std::fabs(rounded) < 9007199254740992.0)
    return static_cast<std::int64_t>(rounded);
  return rounded;
}

std::string version_text() {
  std::string cuda = torch::cuda::is_available()
                         ? "available (" + std::to_string(torch::cuda::device_count()) + " devices)"
                         : "not available";
  return std::string("flatface ") + FLATFACE_VERSION_STRING + " (plugin ABI " +
         std::to_string(FLATFACE_ABI_VERSION) + ")\nlibtorch " + torch_version_string() +
         "\nCUDA " + cuda;
}

namespace {

std::string plugins_kind;  // plugins --kind
ExperimentArgs validate_args;

void print_plugins(const Registry& reg, const std::string& kind) {
  std::vector<const LoadedEntry*> rows;
  for (const auto* e : reg.all())
    if (kind.empty() || kind == to_string(e->entry.kind)) rows.push_back(e);
  std::size_t wk = 4, wn = 4, wd = 11;
  for (const auto* e : rows) {
    wk = std::max(wk, std::string(to_string(e->entry.kind)).size());
    wn = std::max(wn, e->entry.name.size());
    wd = std::max(wd, e->entry.description.size());
  }
  auto line = [&](const std::string& a, const std::string& b, const std::string& c,
                  const std::string& d) {
    std::cout << std::left << std::setw(static_cast<int>(wk)) << a << "  "
              << std::setw(static_cast<int>(wn)) << b << "  " << std::setw(static_cast<int>(wd))
              << c << "  " << d << '\n';
  };
  line("kind", "name", "description", "library");
  for (const auto* e : rows)
    line(to_string(e->entry.kind), e->entry.name, e->entry.description, e->library);
  if (rows.empty()) {
    std::cout << "(no plugins found; searched:";
    for (const auto& f : reg.folders_scanned()) std::cout << ' ' << f;
    std::cout << ")\n";
  }
}

// Constructs every object of every run (each distinct one once) without training.
int validate(const Globals& g, const ExperimentArgs& args) {
  Experiment e = args.load();
  apply_threads(g, &e);
  auto reg = open_registry(g, &e);
  auto runs = expand_grid(e);
  auto backbone = make_backbone(*reg, e.backbone);
  if (!e.init.empty()) load_weights(*backbone, e.init, {e.init_prefix});
  std::int64_t input = backbone->input_size();
  std::map<std::int64_t, std::shared_ptr<TrainSet>> train_sets;
  for (auto seed : e.seeds) train_sets[seed] = make_train_set(*reg, e.train_data, input, seed);
  for (const auto& ev : e.eval) make_verification_set(*reg, ev.data, input, 0);
  std::set<std::string> backbones{e.backbone.options.canonical()};
  for (const auto& r : runs) {
    // With the run's swept values: a value the plugin rejects is reported at the sweep.
    const Experiment re = run_experiment(e, r);
    const auto& s = re.setups[r.setup];
    if (backbones.insert(re.backbone.options.canonical()).second) make_backbone(*reg, re.backbone);
    make_head(*reg, s.head, backbone->embedding_dim(), train_sets[r.seed]->num_classes());
    make_perturbation(*reg, s.perturbation.plugin, perturbation_options(re, r));
  }
  std::cout << e.file << ": ok (" << runs.size() << " runs, " << e.setups.size() << " setups, "
            << e.seeds.size() << " seeds, " << e.eval.size() << " verification sets)\n";
  return 0;
}

}  // namespace

void plugins_options(CLI::App& cmd) {
  cmd.add_option("--kind", plugins_kind, "Only this kind")
      ->check(CLI::IsMember({"backbone", "head", "perturbation", "dataset"}));
}

int plugins_command(const Globals& g) {
  auto reg = open_registry(g);
  print_plugins(*reg, plugins_kind);
  return 0;
}

void validate_options(CLI::App& cmd) {
  validate_args.add_to(cmd);
}

int validate_command(const Globals& g) {
  return validate(g, validate_args);
}

}  // namespace flatface::cli
