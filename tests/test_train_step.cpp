// The training-step context: BN policy of the second pass, head statistics, training accuracy,
// scratch buffers, and the SGD it steps with.
#include <ATen/Context.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <torch/cuda.h>

#include <cmath>

#include "backbone_test_support.hpp"
#include "catch_compat.hpp"
#include "training/device_model.hpp"
#include "training/optimizer.hpp"
#include "step_test_support.hpp"
#include "training/train_step.hpp"

using namespace flatface;
using namespace flatface::testing;
using catch_compat::Approx;

namespace {

TrainSettings settings(double lr) {
  TrainSettings t;
  t.lr = lr;
  return t;
}

at::Tensor batch_x() {
  return doubles({0.3,  -1.2, 0.5, 0.9,  -0.1, 1.1, 0.4, -0.7, 0.2,  0.6,
                  -0.5, 0.8,  1.3, -0.9, 0.05, 0.7, 0.1, -0.3, -1.0, 0.45},
                 {4, 5});
}
at::Tensor batch_y() {
  return longs({0, 2, 1, 1});
}

struct BnModel {
  std::shared_ptr<LinearBnBackbone> backbone = std::make_shared<LinearBnBackbone>(5, 4);
  std::shared_ptr<MarginHead> head;
  BnModel() {
    backbone->to(at::kDouble);
    head = head_plugin("cosface", 3, 4);
  }
};

}  // namespace

CATCH_TEST_CASE("with bn_second_pass = freeze only the first pass moves BN running statistics") {
  BnModel model, reference;
  copy_state(*reference.backbone, *model.backbone);
  // What one training-mode forward at w does to the statistics.
  reference.backbone->forward(batch_x());

  auto optimizer = make_sgd(*model.backbone, *model.head, settings(0.1));
  TrainStep step(model.backbone, model.head, *optimizer, {"freeze", false});
  step.run(*strategy("sam", {{"rho", num(0.5)}}), batch_x(), batch_y());

  auto& bn = model.backbone->bn();
  auto& expected = reference.backbone->bn();
  CATCH_CHECK(bn->running_mean.equal(expected->running_mean));
  CATCH_CHECK(bn->running_var.equal(expected->running_var));
  CATCH_CHECK(bn->num_batches_tracked.item<std::int64_t>() == 1);
  CATCH_CHECK(bn->options.momentum().value() == 0.1);  // restored after the pass
}

CATCH_TEST_CASE("with bn_second_pass = update the perturbed pass moves the statistics again") {
  BnModel model, reference;
  copy_state(*reference.backbone, *model.backbone);
  reference.backbone->forward(batch_x());

  auto optimizer = make_sgd(*model.backbone, *model.head, settings(0.1));
  TrainStep step(model.backbone, model.head, *optimizer, {"update", false});
  step.run(*strategy("sam", {{"rho", num(0.5)}}), batch_x(), batch_y());

  auto& bn = model.backbone->bn();
  CATCH_CHECK_FALSE(bn->running_mean.equal(reference.backbone->bn()->running_mean));
  CATCH_CHECK(bn->num_batches_tracked.item<std::int64_t>() == 2);
}

CATCH_TEST_CASE("an unknown BN policy is a configuration error") {
  BnModel model;
  auto optimizer = make_sgd(*model.backbone, *model.head, settings(0.1));
  CATCH_CHECK_THROWS_AS(TrainStep(model.backbone, model.head, *optimizer, {"sometimes", false}),
                        ConfigError);
}

CATCH_TEST_CASE("AdaFace's running statistics update once per step, in the first pass") {
  // Identity backbone: the embedding norms are those of the inputs, whatever the weights do.
  auto backbone = std::make_shared<IdentityBackbone>(5);
  auto head = head_plugin("adaface", 3, 5);
  auto optimizer = make_sgd(*backbone, *head, settings(0.1));
  TrainStep step(backbone, head, *optimizer, {});
  at::Tensor x = batch_x();
  at::Tensor norms = x.norm(2, {1});
  for (const char* name : {"sam", "aace", "none"}) {
    CATCH_CAPTURE(name);
    auto buffers = head->named_buffers();
    double mean = buffers["batch_mean"].item<double>();
    double std = buffers["batch_std"].item<double>();
    step.run(*strategy(name), x, batch_y());
    CATCH_CHECK(buffers["batch_mean"].item<double>() ==
                Approx(0.99 * mean + 0.01 * norms.mean().item<double>()).epsilon(1e-14));
    CATCH_CHECK(buffers["batch_std"].item<double>() ==
                Approx(0.99 * std + 0.01 * norms.std().item<double>()).epsilon(1e-14));
    CATCH_CHECK(head->update_statistics());
  }
}

CATCH_TEST_CASE("the correct count is of samples whose first-pass cosine argmax is the label") {
  auto backbone = std::make_shared<IdentityBackbone>(3);
  auto head = head_plugin("arcface", 3, 3);
  set_parameter(*head, "weight", doubles({1, 0, 0, 0, 1, 0, 0, 0, 1}, {3, 3}));
  auto optimizer = make_sgd(*backbone, *head, settings(0.0));
  TrainStep step(backbone, head, *optimizer, {});
  CATCH_CHECK(step.take_correct() == 0);
  // argmax per row: 0, 1, 2, 0 against labels 0, 1, 0, 2 -> two correct.
  at::Tensor x = doubles({5, 1, 0, 0, 3, 1, 0, 1, 4, 2, 1, 1}, {4, 3});
  step.run(*strategy("sam"), x, longs({0, 1, 0, 2}));  // two passes, counted once
  CATCH_CHECK(step.take_correct() == 2);
}

CATCH_TEST_CASE("take_correct sums the correct counts of the steps since the last call") {
  auto backbone = std::make_shared<IdentityBackbone>(3);
  auto head = head_plugin("arcface", 3, 3);
  set_parameter(*head, "weight", doubles({1, 0, 0, 0, 1, 0, 0, 0, 1}, {3, 3}));
  auto optimizer = make_sgd(*backbone, *head, settings(0.0));  // lr 0: the weights stay put
  TrainStep step(backbone, head, *optimizer, {});
  CATCH_CHECK(step.take_correct() == 0);
  at::Tensor x = doubles({5, 1, 0, 0, 3, 1, 0, 1, 4, 2, 1, 1}, {4, 3});  // argmax 0, 1, 2, 0
  auto none = strategy("none");
  step.run(*none, x, longs({0, 1, 0, 2}));  // 2 correct
  step.run(*none, x, longs({0, 1, 2, 0}));  // 4 correct
  step.run(*none, x, longs({1, 0, 0, 2}));  // 0 correct
  CATCH_CHECK(step.take_correct() == 6);
  CATCH_CHECK(step.take_correct() == 0);    // reset by the call
  step.run(*none, x, longs({0, 0, 0, 0}));  // rows 0 and 3
  CATCH_CHECK(step.take_correct() == 2);
}

CATCH_TEST_CASE("the saved-weights buffer is allocated once, shaped like the parameters") {
  BnModel model;
  auto optimizer = make_sgd(*model.backbone, *model.head, settings(0.1));
  TrainStep step(model.backbone, model.head, *optimizer, {});
  const auto& params = step.parameters();
  CATCH_REQUIRE(params.size() == 5);  // fc weight, fc bias, bn weight, bn bias, class weights
  auto& saved = step.saved_weights();
  for (std::size_t i = 0; i < params.size(); ++i) {
    CATCH_CHECK(saved[i].sizes() == params[i].sizes());
    CATCH_CHECK(saved[i].scalar_type() == params[i].scalar_type());
    CATCH_CHECK_FALSE(saved[i].requires_grad());
  }
  const void* first = saved[0].data_ptr();
  auto sam = strategy("sam");
  step.run(*sam, batch_x(), batch_y());
  step.run(*sam, batch_x(), batch_y());
  CATCH_CHECK(step.saved_weights()[0].data_ptr() == first);
}

CATCH_TEST_CASE("bf16 autocast on a CPU batch is refused with a clear message") {
  BnModel model;
  auto optimizer = make_sgd(*model.backbone, *model.head, settings(0.1));
  TrainStep step(model.backbone, model.head, *optimizer, {"freeze", true});
  CATCH_CHECK_THROWS_WITH(step.run(*strategy("none"), batch_x(), batch_y()),
                          catch_compat::Contains("CUDA"));
}

CATCH_TEST_CASE("make_sgd exempts 1-d parameters from weight decay only when asked") {
  BnModel model;
  TrainSettings t;
  t.lr = 0.05;
  t.momentum = 0.8;
  t.weight_decay = 1e-3;
  {
    auto sgd = make_sgd(*model.backbone, *model.head, t);
    CATCH_REQUIRE(sgd->param_groups().size() == 1);
    CATCH_CHECK(sgd->param_groups()[0].params().size() == 5);
    auto& o = static_cast<torch::optim::SGDOptions&>(sgd->param_groups()[0].options());
    CATCH_CHECK(o.lr() == 0.05);
    CATCH_CHECK(o.momentum() == 0.8);
    CATCH_CHECK(o.weight_decay() == 1e-3);
  }
  t.decay_bn_and_bias = false;
  auto sgd = make_sgd(*model.backbone, *model.head, t);
  CATCH_REQUIRE(sgd->param_groups().size() == 2);
  const auto& decayed = sgd->param_groups()[0];
  const auto& plain = sgd->param_groups()[1];
  CATCH_CHECK(decayed.params().size() == 2);  // fc weight and class weights
  for (const auto& p : decayed.params()) CATCH_CHECK(p.dim() == 2);
  CATCH_CHECK(plain.params().size() == 3);  // fc bias, bn weight, bn bias
  for (const auto& p : plain.params()) CATCH_CHECK(p.dim() == 1);
  CATCH_CHECK(static_cast<const torch::optim::SGDOptions&>(decayed.options()).weight_decay() ==
              1e-3);
  CATCH_CHECK(static_cast<const torch::optim::SGDOptions&>(plain.options()).weight_decay() == 0.0);

  set_learning_rate(*sgd, 0.001);
  for (auto& g : sgd->param_groups()) CATCH_CHECK(g.options().get_lr() == 0.001);
}

// Hidden (not run by ctest): bench/gpu_check.sh runs `test_train_step "[cuda]"` on a GPU machine.
// The same model, batch and two steps on the CPU and on CUDA, in fp32 with TF32 off, for every
// strategy of the paper with both heads: losses, gradient norms, final gradients and weights agree.
CATCH_TEST_CASE("on CUDA, two steps of each strategy equal the same steps on the CPU", "[.cuda]") {
  CATCH_REQUIRE(torch::cuda::is_available());
  at::globalContext().setAllowTF32CuDNN(false);  // cuDNN's default: TF32 convolutions
  at::globalContext().setAllowTF32CuBLAS(false);
  const c10::Device cpu(at::kCPU), cuda(at::kCUDA, 0);
  for (const char* head_name : {"arcface", "adaface"}) {
    for (const char* strategy_name : {"none", "sam", "aace"}) {
      CATCH_INFO(head_name << " x " << strategy_name);
      std::map<std::string, Options::Value> rho;
      if (std::string(strategy_name) != "none") rho["rho"] = num(0.05);
      std::vector<StepStats> stats[2];
      std::vector<at::Tensor> grads[2], weights[2];
      int side = 0;
      for (const auto& device : {cpu, cuda}) {
        at::manual_seed(7);
        auto backbone = make_backbone("iresnet-small");
        auto head =
            step_plugins()
                .get(PluginKind::head, head_name)
                .entry.head(HeadArgs{options_of("head", {}), backbone->embedding_dim(), 10});
        auto images = at::randn({8, 3, 56, 56});
        if (device.is_cuda()) images = images.contiguous(at::MemoryFormat::ChannelsLast);
        auto labels = at::randint(10, {8}, at::kLong);
        DeviceModel model = place_on_device(backbone, head, settings(0.1), "freeze", device);
        auto perturbation = strategy(strategy_name, rho);
        for (int s = 0; s < 2; ++s) {
          stats[side].push_back(
              model.step->run(*perturbation, images.to(device), labels.to(device)));
        }
        for (const auto& p : model.step->parameters()) {
          grads[side].push_back(p.grad().to(at::kCPU));
          weights[side].push_back(p.detach().to(at::kCPU));
        }
        ++side;
      }
      // Both computed and close, or both not computed.
      auto same = [](const std::optional<double>& a, const std::optional<double>& b, double tol) {
        return a.has_value() == b.has_value() && (!a || *a == Approx(*b).epsilon(tol));
      };
      for (std::size_t s = 0; s < 2; ++s) {
        CATCH_CHECK(stats[1][s].loss == Approx(stats[0][s].loss).epsilon(1e-4));
        CATCH_CHECK(same(stats[1][s].loss_perturbed, stats[0][s].loss_perturbed, 1e-4));
        CATCH_CHECK(same(stats[1][s].epsilon_norm, stats[0][s].epsilon_norm, 1e-3));
      }
      CATCH_REQUIRE(grads[0].size() == grads[1].size());
      for (std::size_t i = 0; i < grads[0].size(); ++i) {
        const double scale = grads[0][i].abs().max().item<double>() + 1e-12;
        CATCH_CHECK(max_abs_diff(grads[1][i], grads[0][i]) / scale < 1e-3);
        CATCH_CHECK(max_abs_diff(weights[1][i], weights[0][i]) < 1e-5);
      }
    }
  }
}

namespace {

// Records what the context shows a strategy: labels and logits before and after narrowing the
// batch, and where the step stands.
class Probe final : public Perturbation {
 public:
  StepStats step(StepContext& ctx) override {
    whole_labels = ctx.labels().clone();
    at::NoGradGuard no_grad;
    whole_logits = ctx.forward(Pass::first);
    ctx.select_samples(longs({3, 1}));
    narrowed_labels = ctx.labels().clone();
    narrowed_logits = ctx.forward(Pass::second);
    progress = ctx.progress();
    return {};  // leaves the selection in place: the next step must start on the whole batch
  }
  bool two_pass() const override { return true; }

  at::Tensor whole_labels, whole_logits, narrowed_labels, narrowed_logits;
  StepProgress progress;
};

}  // namespace

CATCH_TEST_CASE("select_samples narrows the passes and labels to rows; each step starts whole") {
  BnModel model;
  auto optimizer = make_sgd(*model.backbone, *model.head, settings(0.1));
  TrainStep step(model.backbone, model.head, *optimizer, {"freeze", false});
  Probe probe;
  for (int i = 0; i < 2; ++i) {
    CATCH_CAPTURE(i);
    step.run(probe, batch_x(), batch_y());
    CATCH_CHECK(probe.whole_labels.equal(batch_y()));
    CATCH_CHECK(probe.whole_logits.size(0) == 4);
    CATCH_CHECK(probe.narrowed_labels.equal(longs({1, 2})));  // rows 3 and 1 of {0, 2, 1, 1}
    CATCH_REQUIRE(probe.narrowed_logits.size(0) == 2);
  }
  // The narrowed pass is the model on those rows alone (BN in training mode: their statistics).
  at::NoGradGuard no_grad;
  at::Tensor rows = batch_x().index_select(0, longs({3, 1}));
  at::Tensor expected = model.head->logits(model.backbone->forward(rows), longs({1, 2}));
  CATCH_CHECK(max_abs_diff(probe.narrowed_logits, expected) < 1e-12);
}

CATCH_TEST_CASE("progress counts the steps, reads the optimizer's lr and keeps the run's peak lr") {
  BnModel model;
  auto optimizer = make_sgd(*model.backbone, *model.head, settings(0.2));
  TrainStep step(model.backbone, model.head, *optimizer, {"freeze", false});
  Probe probe;
  step.run(probe, batch_x(), batch_y());
  CATCH_CHECK(probe.progress.step == 0);
  CATCH_CHECK(probe.progress.total_steps == 0);  // not told
  CATCH_CHECK(probe.progress.lr == Approx(0.2));
  CATCH_CHECK(probe.progress.base_lr == Approx(0.2));
  set_learning_rate(*optimizer, 0.05);
  step.run(probe, batch_x(), batch_y());
  CATCH_CHECK(probe.progress.step == 1);
  CATCH_CHECK(probe.progress.lr == Approx(0.05));
  CATCH_CHECK(probe.progress.base_lr == Approx(0.2));
  step.set_progress(41, 100);  // a resumed run
  step.run(probe, batch_x(), batch_y());
  CATCH_CHECK(probe.progress.step == 41);
  CATCH_CHECK(probe.progress.total_steps == 100);
}
