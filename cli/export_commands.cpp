// flatface export: a checkpoint's backbone as a state dict that Python's torch.load reads, with
// the same parameter names as insightface's arcface_torch.
#include <array>
#include <iostream>
#include <sstream>
#include <string>

#include "common.hpp"
#include "formats/state_dict.hpp"
#include "training/checkpoint.hpp"

namespace flatface::cli {

namespace {

struct ExportArgs {
  std::string checkpoint;
  std::string out;
};
ExportArgs export_args;

// "RGB, (x/255 - 0.5) / 0.5": what the exported network expects, in the words of a Python
// preprocessing step.
std::string input_convention(const InputFormat& f) {
  auto number = [](float v) {
    std::ostringstream s;
    s << v;
    return s.str();
  };
  auto per_channel = [&](const std::array<float, 3>& v) {
    if (v[0] == v[1] && v[1] == v[2]) return number(v[0]);
    return "(" + number(v[0]) + ", " + number(v[1]) + ", " + number(v[2]) + ")";
  };
  return std::string(f.bgr ? "BGR" : "RGB") + ", (x/255 - " + per_channel(f.mean) + ") / " +
         per_channel(f.std);
}

int export_backbone(const Globals& g, const ExportArgs& args) {
  auto registry = open_registry(g);
  CheckpointModel model = load_checkpoint_model(*registry, args.checkpoint);
  auto weights = state_dict(*model.backbone);
  save_tensor_dict(args.out, weights);
  std::cout << args.out << ": " << weights.size() << " tensors of backbone '"
            << model.experiment.backbone.plugin << "' (run " << model.run_id << ", epoch "
            << model.epoch << ")\n"
            << "load in Python: model.load_state_dict(torch.load('" << args.out << "'))\n"
            << "input: " << model.backbone->input_size() << "x" << model.backbone->input_size()
            << " images, " << input_convention(model.backbone->input_format()) << "\n";
  return 0;
}

}  // namespace

void export_options(CLI::App& cmd) {
  cmd.add_option("checkpoint", export_args.checkpoint, "Checkpoint (.ckpt) of a run")
      ->required()
      ->check(CLI::ExistingFile);
  cmd.add_option("--out", export_args.out, "Output file, e.g. backbone.pt")->required();
}

int export_command(const Globals& g) {
  return export_backbone(g, export_args);
}

}  // namespace flatface::cli
