// The tiny grid of the end-to-end tests: an experiment file that trains in seconds on one CPU
// thread. By default, synthetic identities, a narrow IResNet and two setups (ArcFace plain and
// with SAM, one pass and two) for one epoch; tiny_toy_grid() puts the toy test plugins in their
// place. A test sets what it varies and reads the rest from here.
#pragma once

#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace flatface::testing {

// One [[setup]]: its head, perturbation and sweep as TOML inline tables ("" leaves a key out).
struct TinySetup {
  TinySetup(std::string name, std::string head = R"({ plugin = "arcface" })",
            std::string perturbation = R"({ plugin = "none" })", std::string sweep = "")
      : name(std::move(name)),
        head(std::move(head)),
        perturbation(std::move(perturbation)),
        sweep(std::move(sweep)) {}
  std::string name, head, perturbation, sweep;
};

// The experiment file's keys that tests vary. Tables are TOML inline tables; an empty string or
// an empty optional leaves its key out, so that the experiment's default applies.
struct TinyGrid {
  // [experiment]
  std::string name = "tiny";
  std::vector<int> seeds{0};
  std::string device = "cpu";
  std::optional<int> threads = 1;
  std::string output;  // the results folder
  // [data]
  std::string train =
      R"({ plugin = "synthetic", identities = 8, images_per_identity = 8, seed = 0 })";
  std::vector<std::string> eval{
      R"({ name = "S", plugin = "synthetic", identities = 8, images_per_identity = 8, seed = 0, )"
      R"(pairs = 40, verification_identities = 6 })"};
  // [model]
  std::string backbone = R"({ plugin = "iresnet-small", width = 4, embedding = 16 })";
  // [train]
  std::optional<int> epochs = 1;
  std::optional<int> batch_size = 16;
  std::vector<std::string> train_keys;  // further lines of [train], e.g. "milestones = [1]"
  std::vector<TinySetup> setups{
      {"ArcFace"},
      {"SAM-ArcFace", R"({ plugin = "arcface" })", R"({ plugin = "sam", rho = 0.05 })"}};
  std::string extra_tables;  // appended as written, e.g. "[analysis]\nbatches = 1\n"
};

// The grid on the toy test plugins (tests/plugins): 3 classes, 4-wide embeddings, no device or
// thread count of its own; the setups are left to the test.
inline TinyGrid tiny_toy_grid() {
  TinyGrid g;
  g.device = "";
  g.threads.reset();
  g.train = R"({ plugin = "test-toy-data", classes = 3 })";
  g.eval = {R"({ name = "toy", plugin = "test-toy-data", pairs = 20 })"};
  g.backbone = R"({ plugin = "test-toy-backbone", embedding = 4 })";
  g.setups.clear();
  return g;
}

// The experiment file of `g`. Its lines are laid out as a person writes them, one key a line,
// a blank line between tables, so that tests may point at a line and column.
inline std::string tiny_grid(const TinyGrid& g = {}) {
  auto list = [](const auto& items) {
    std::string out;
    for (const auto& item : items) {
      if (!out.empty()) out += ", ";
      if constexpr (std::is_same_v<std::decay_t<decltype(item)>, int>)
        out += std::to_string(item);
      else
        out += item;
    }
    return "[" + out + "]";
  };
  std::string t = "[experiment]\nname = \"" + g.name + "\"\nseeds = " + list(g.seeds) + "\n";
  if (!g.device.empty()) t += "device = \"" + g.device + "\"\n";
  if (g.threads) t += "threads = " + std::to_string(*g.threads) + "\n";
  if (!g.output.empty()) t += "output = \"" + g.output + "\"\n";
  t += "\n[data]\ntrain = " + g.train + "\n";
  if (!g.eval.empty()) t += "eval = " + list(g.eval) + "\n";
  t += "\n[model]\nbackbone = " + g.backbone + "\n";
  t += "\n[train]\n";
  if (g.epochs) t += "epochs = " + std::to_string(*g.epochs) + "\n";
  if (g.batch_size) t += "batch_size = " + std::to_string(*g.batch_size) + "\n";
  for (const auto& line : g.train_keys) t += line + "\n";
  for (const auto& s : g.setups) {
    t += "\n[[setup]]\nname = \"" + s.name + "\"\nhead = " + s.head + "\n";
    if (!s.perturbation.empty()) t += "perturbation = " + s.perturbation + "\n";
    if (!s.sweep.empty()) t += "sweep = " + s.sweep + "\n";
  }
  if (!g.extra_tables.empty()) t += "\n" + g.extra_tables;
  return t;
}

}  // namespace flatface::testing
