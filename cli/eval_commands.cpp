// flatface eval | embed: a trained checkpoint, or a backbone's weights (insightface's
// backbone.pth), on verification sets.
#include <c10/core/Device.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>

#include "common.hpp"
#include "data/dataset_recognition.hpp"
#include "evaluation/embedding_file.hpp"
#include "evaluation/evaluation.hpp"
#include "formats/state_dict.hpp"
#include "plugin_host/factory.hpp"
#include "training/checkpoint.hpp"
#include "training/trainer.hpp"

namespace flatface::cli {

namespace {

struct NamedSet {
  std::string name;
  std::shared_ptr<VerificationSet> set;
};

// SET is the name of one of the [data] eval sets of the checkpoint's experiment (`e`; null with
// --weights, which has none), or a file or folder that a dataset plugin reads as a verification
// set (`plugin`, from --dataset, names it; otherwise the plugin that recognises it).
NamedSet open_set(const Registry& reg, const Experiment* e, const std::string& arg,
                  const std::string& plugin, std::int64_t input_size) {
  if (e != nullptr) {
    for (const auto& ev : e->eval)
      if (ev.name == arg) return {ev.name, make_verification_set(reg, ev.data, input_size, 0)};
  }
  if (std::filesystem::exists(arg)) {
    PluginRef ref = recognised_ref(reg, arg, DataRole::verification, plugin);
    return {std::filesystem::path(arg).stem().string(),
            make_verification_set(reg, ref, input_size, 0)};
  }
  if (e == nullptr) {
    throw ConfigError("'" + arg +
                      "' is not an existing file or folder; with --weights, verification sets are "
                      "given as paths a dataset plugin reads");
  }
  std::string known;
  for (const auto& ev : e->eval) known += (known.empty() ? "" : ", ") + ev.name;
  throw ConfigError("'" + arg +
                    "' is neither an existing file or folder nor a verification set of the "
                    "checkpoint's experiment (" +
                    (known.empty() ? "it declares none" : known) + ")");
}

struct EvalArgs {
  std::string checkpoint;
  std::string weights;   // instead of a checkpoint: a state dict file ...
  std::string backbone;  // ... and the backbone it is for, as an inline TOML table
  std::string weights_prefix;  // only the entries of --weights whose names start with it
  std::vector<std::string> sets;
  std::string out;
  std::int64_t batch_size = 256;
  std::string device;   // empty: the experiment's
  std::string dataset;  // the plugin reading SET paths; empty: the one that recognises them

  void add_common(CLI::App& cmd) {
    auto* ckpt = cmd.add_option("--checkpoint", checkpoint, "Checkpoint file of a run")
                     ->check(CLI::ExistingFile);
    auto* w = cmd.add_option("--weights", weights,
                             "Instead of --checkpoint: a backbone's state dict saved by torch.save "
                             "(e.g. insightface's backbone.pth)")
                  ->check(CLI::ExistingFile);
    auto* b = cmd.add_option("--backbone", backbone,
                             "The backbone of --weights, e.g. '{ plugin = \"iresnet\", depth = "
                             "100 }'");
    auto* prefix = cmd.add_option("--weights-prefix", weights_prefix,
                                  "Only the entries of --weights whose names start with it, the "
                                  "prefix removed (AdaFace's .ckpt: 'model.')");
    ckpt->excludes(w);
    prefix->needs(w);
    w->needs(b);
    b->needs(w);
    cmd.add_option("--batch-size", batch_size, "Images per forward pass")
        ->check(CLI::PositiveNumber);
    cmd.add_option("--device", device, "cpu | cuda | cuda:N | auto (default: the experiment's)");
    cmd.add_option(
        "--dataset", dataset,
        "The dataset plugin that reads SET paths (default: the one that recognises them)");
  }
};
EvalArgs eval_args, embed_args;

// The backbone to evaluate, from a checkpoint or from --weights and --backbone.
struct Loaded {
  std::unique_ptr<Registry> registry;
  std::shared_ptr<Backbone> backbone;
  std::optional<Experiment> experiment;  // a checkpoint's, whose [data] eval sets SET may name
  std::string origin;                    // "FILE: run R, epoch E" or "FILE: backbone B"
  std::map<std::string, std::string> attributes;  // for the embedding file
  c10::Device device{c10::kCPU};
};

Loaded load(const Globals& g, const EvalArgs& args) {
  Loaded l;
  l.registry = open_registry(g);
  if (!args.checkpoint.empty()) {
    CheckpointModel m = load_checkpoint_model(*l.registry, args.checkpoint);
    l.backbone = m.backbone;
    l.experiment = std::move(m.experiment);
    l.origin = args.checkpoint + ": run " + m.run_id + ", epoch " + std::to_string(m.epoch);
    l.attributes = {
        {"checkpoint", args.checkpoint}, {"run_id", m.run_id}, {"epoch", std::to_string(m.epoch)}};
  } else if (!args.weights.empty()) {
    const PluginRef ref = parse_plugin_ref(args.backbone, "--backbone");
    const std::string label = ref.plugin + ref.options.canonical();
    l.backbone = make_backbone(*l.registry, ref);
    load_weights(*l.backbone, args.weights, {args.weights_prefix});
    l.backbone->eval();
    l.origin = args.weights + ": backbone " + label;
    l.attributes = {{"weights", args.weights}, {"backbone", label}};
    if (!args.weights_prefix.empty()) l.attributes["weights_prefix"] = args.weights_prefix;
  } else {
    throw ConfigError("give --checkpoint FILE, or --weights FILE with --backbone TABLE");
  }
  const Experiment defaults;
  const Experiment& e = l.experiment ? *l.experiment : defaults;
  apply_threads(g, &e);
  l.device = c10::Device(resolve_device(args.device.empty() ? e.device : args.device));
  l.backbone->to(l.device);
  return l;
}

std::string format(const char* pattern, double a, double b = 0) {
  char buf[64];
  std::snprintf(buf, sizeof buf, pattern, a, b);
  return buf;
}

int run_eval(const Globals& g, const EvalArgs& args) {
  Loaded l = load(g, args);
  auto& backbone = *l.backbone;
  std::vector<NamedSet> sets;  // all opened first: a wrong name fails before any work
  for (const auto& arg : args.sets)
    sets.push_back(open_set(*l.registry, l.experiment ? &*l.experiment : nullptr, arg, args.dataset,
                            backbone.input_size()));
  std::cout << "# " << l.origin << ", device " << l.device.str() << "\n";
  struct Row {
    std::string name, pairs, accuracy, threshold, tar;
  };
  std::vector<Row> rows{{"benchmark", "pairs", "accuracy (%)", "threshold", "TAR@FAR=1e-3 (%)"}};
  for (const auto& s : sets) {
    VerificationResult r = evaluate(backbone, *s.set, args.batch_size, l.device);
    rows.push_back({s.name, std::to_string(s.set->num_pairs()),
                    format("%.2f ± %.2f", 100 * r.accuracy, 100 * r.accuracy_std),
                    format("%.3f", r.threshold), format("%.2f", 100 * r.tar_at_far)});
  }
  // Column widths in characters ("±" is two bytes in UTF-8).
  auto width = [](const std::string& s) {
    std::size_t w = 0;
    for (unsigned char c : s) w += (c & 0xC0) != 0x80;
    return w;
  };
  std::vector<std::size_t> w(5, 0);
  for (const auto& r : rows) {
    const std::string* cells[] = {&r.name, &r.pairs, &r.accuracy, &r.threshold, &r.tar};
    for (std::size_t c = 0; c < 5; ++c) w[c] = std::max(w[c], width(*cells[c]));
  }
  for (const auto& r : rows) {
    const std::string* cells[] = {&r.name, &r.pairs, &r.accuracy, &r.threshold, &r.tar};
    for (std::size_t c = 0; c < 5; ++c) {  // names left-aligned, numbers right-aligned
      const std::string pad(w[c] - width(*cells[c]), ' ');
      std::cout << (c == 0 ? *cells[c] + pad : "  " + pad + *cells[c]);
    }
    std::cout << '\n';
  }
  return 0;
}

int run_embed(const Globals& g, const EvalArgs& args) {
  Loaded l = load(g, args);
  auto& backbone = *l.backbone;
  NamedSet s = open_set(*l.registry, l.experiment ? &*l.experiment : nullptr, args.sets.at(0),
                        args.dataset, backbone.input_size());
  PairEmbeddings e = embed_pairs_with_magnitudes(backbone, *s.set, args.batch_size, l.device);
  const at::Tensor& embeddings = e.embeddings;
  auto attributes = l.attributes;
  attributes["set"] = s.name;
  attributes["source"] = s.set->describe();
  write_embedding_file(args.out, embeddings, s.set->issame(), attributes, e.magnitudes);
  std::cout << args.out << ": " << embeddings.size(0) << " x " << embeddings.size(1)
            << " embeddings of " << s.name << "\n";
  return 0;
}

}  // namespace

void eval_options(CLI::App& cmd) {
  eval_args.add_common(cmd);
  cmd.add_option("sets", eval_args.sets,
                 "Verification sets: files or folders a dataset plugin reads (e.g. .bin), or names "
                 "from the checkpoint experiment's [data] eval")
      ->required();
}

int eval_command(const Globals& g) {
  return run_eval(g, eval_args);
}

void embed_options(CLI::App& cmd) {
  embed_args.add_common(cmd);
  cmd.add_option("set", embed_args.sets,
                 "A file or folder a dataset plugin reads (e.g. .bin), or a name from the "
                 "checkpoint experiment's [data] eval")
      ->required()
      ->expected(1);
  cmd.add_option("--out", embed_args.out, "Output .h5 file (datasets embeddings, issame)")
      ->required();
}

int embed_command(const Globals& g) {
  return run_embed(g, embed_args);
}

}  // namespace flatface::cli
