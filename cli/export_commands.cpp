// flatface export: a checkpoint's backbone as a state dict that Python's torch.load reads, with
// the same parameter names as insightface's arcface_torch.
#include <iostream>

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

int export_backbone(const Globals& g, const ExportArgs& args) {
  auto registry = open_registry(g);
  CheckpointModel model = load_checkpoint_model(*registry, args.checkpoint);
  auto weights = state_dict(*model.backbone);
  save_tensor_dict(args.out, weights);
  std::cout << args.out << ": " << weights.size() << " tensors of backbone '"
            << model.experiment.backbone.plugin << "' (run " << model.run_id << ", epoch "
            << model.epoch << ")\n"
            << "load in Python: model.load_state_dict(torch.load('" << args.out << "'))\n";
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
