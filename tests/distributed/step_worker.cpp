// One rank of a tiny data-parallel training run, for test_distributed: a few steps of a strategy
// on a fixed global batch, through the host's TrainStep and the run's Communicator; it writes its
// trainable parameters (and its step statistics) to <out>.rank<R>.bin as raw float64.
//   step_worker <strategy> <epsilon global|local> <backbone linear|iresnet-small> <head>
//               <batch> <steps> <out>
// Without a launcher's variables it is the single process that the ranks must reproduce.
#include <ATen/ops/cat.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/sgd.h>
#include <torch/utils.h>

#include <fstream>
#include <iostream>
#include <optional>

#include "data/loader.hpp"
#include "distributed/c10d_communicator.hpp"
#include "distributed/launch_env.hpp"
#include "distributed/model_sync.hpp"
#include "experiment/experiment.hpp"
#include "plugin_host/factory.hpp"
#include "training/train_step.hpp"

using namespace flatface;

namespace {

// BN-free: one linear map of the pixels, so that the ranks' step equals one process's exactly.
class LinearBackbone : public Backbone {
 public:
  LinearBackbone() : fc_(register_module("fc", torch::nn::Linear(3 * 8 * 8, 8))) {}
  torch::Tensor forward(const torch::Tensor& x) override { return fc_(x.flatten(1)); }
  std::int64_t embedding_dim() const override { return 8; }
  std::int64_t input_size() const override { return 8; }

 private:
  torch::nn::Linear fc_;
};

Options options_of(const std::string& what, const std::map<std::string, double>& values) {
  Options o(what, SourcePos{"step_worker", 1, 1});
  for (const auto& [k, v] : values) o.set(k, Options::Value{v, SourcePos{"step_worker", 1, 1}});
  return o;
}

// The head `name` with small-model settings; "elasticface+" is ElasticFace+ (plus = true),
// "mv-softmax-adaptive" MV-Softmax with adaptive t.
PluginRef head_ref(const std::string& name) {
  if (name == "adacos") return {name, options_of("head", {})};  // dynamic scale
  if (name == "circle") return {name, options_of("head", {{"gamma", 32.0}})};
  if (name == "mv-softmax-adaptive") {
    Options o = options_of("head", {{"s", 16.0}, {"t", 0.12}});
    o.set("adaptive", Options::Value{true, SourcePos{"step_worker", 1, 1}});
    return {"mv-softmax", o};
  }
  if (name == "sphereface") return {name, options_of("head", {{"base", 100.0}})};
  if (name == "magface")
    return {name, options_of("head", {{"s", 16.0}, {"l_a", 0.05}, {"u_a", 50.0}})};
  if (name == "elasticface+") {
    Options o = options_of("head", {{"s", 16.0}, {"sigma", 0.1}});
    o.set("plus", Options::Value{true, SourcePos{"step_worker", 1, 1}});
    return {"elasticface", o};
  }
  if (name == "elasticface") return {name, options_of("head", {{"s", 16.0}, {"sigma", 0.1}})};
  return {name, options_of("head", {{"s", 16.0}})};
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 8) {
    std::cerr << "usage: step_worker strategy epsilon backbone head batch steps out\n";
    return 2;
  }
  const std::string strategy_name = argv[1], epsilon = argv[2], backbone_name = argv[3],
                    head_name = argv[4], out = argv[7];
  const std::int64_t batch = std::stoll(argv[5]), steps = std::stoll(argv[6]);
  torch::set_num_threads(1);

  const auto env = distributed::launch_from_environment();
  std::optional<distributed::C10dCommunicator> c10d;
  if (env) c10d.emplace(*env, c10::Device("cpu"), std::chrono::seconds(60));
  distributed::Communicator& ranks = c10d ? *c10d : distributed::single_process();
  const int rank = ranks.rank(), world = ranks.world_size();

  auto registry = open_registry({});
  const std::int64_t classes = 5;
  // Each rank starts from other weights: the broadcast from rank 0 must make them equal.
  torch::manual_seed(7 + static_cast<std::uint64_t>(rank));
  std::shared_ptr<Backbone> backbone;
  if (backbone_name == "linear")
    backbone = std::make_shared<LinearBackbone>();
  else
    backbone = make_backbone(*registry, PluginRef{backbone_name, options_of("backbone", {})});
  auto head = make_head(*registry, head_ref(head_name), backbone->embedding_dim(), classes, ranks,
                        /*seed=*/3);
  // float64, so that the comparison sees the distributed step, not float32 rounding.
  backbone->to(at::kDouble);
  head->to(at::kDouble);
  distributed::broadcast_modules(ranks, {backbone.get(), head.get()});
  std::vector<at::Tensor> params;
  for (auto* m : {static_cast<torch::nn::Module*>(backbone.get()),
                  static_cast<torch::nn::Module*>(head.get())})
    for (auto& p : m->parameters()) params.push_back(p);
  torch::optim::SGD sgd(params, torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(5e-4));

  const auto [begin, end] = batch_share(batch, rank, world);
  TrainStepOptions so;
  so.data_parallel = {&ranks, static_cast<double>(end - begin) / static_cast<double>(batch),
                      epsilon == "global", begin, batch};
  TrainStep step(backbone, head, sgd, so);
  std::map<std::string, double> rho;
  if (strategy_name != "none") rho["rho"] = 0.5;
  auto strategy = make_perturbation(*registry, strategy_name, options_of("perturbation", rho), 0);

  // The same global batches in every process; this rank takes its rows.
  torch::manual_seed(1234);
  const std::int64_t side = backbone->input_size();
  at::Tensor images = at::randn({steps, batch, 3, side, side}, at::kDouble);
  at::Tensor labels = at::randint(classes, {steps, batch}, at::kLong);
  std::vector<double> losses;
  for (std::int64_t s = 0; s < steps; ++s) {
    StepStats st = step.run(*strategy, images[s].narrow(0, begin, end - begin).contiguous(),
                            labels[s].narrow(0, begin, end - begin).contiguous());
    losses.push_back(st.loss);
  }
  const double correct = static_cast<double>(step.take_correct());

  std::vector<at::Tensor> flat;
  for (auto& p : params) flat.push_back(p.detach().to(at::kDouble).reshape(-1));
  for (auto* m : {static_cast<torch::nn::Module*>(head.get())})
    for (auto& b : m->buffers()) flat.push_back(b.detach().to(at::kDouble).reshape(-1));
  at::Tensor all = at::cat(flat).contiguous();
  std::ofstream f(out + ".rank" + std::to_string(rank) + ".bin", std::ios::binary);
  f.write(reinterpret_cast<const char*>(losses.data()),
          static_cast<std::streamsize>(losses.size() * sizeof(double)));
  f.write(reinterpret_cast<const char*>(&correct), sizeof correct);
  f.write(reinterpret_cast<const char*>(all.data_ptr<double>()),
          static_cast<std::streamsize>(all.numel() * sizeof(double)));
  return f ? 0 : 1;
} catch (const std::exception& e) {
  std::cerr << "step_worker: " << e.what() << "\n";
  return 1;
}
