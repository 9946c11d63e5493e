// Perturbation strategies, loaded through the plugin registry, against the formulas of the paper
// (eqs. 15-21) computed here on copies of the model, and against the reference vectors.
#include <ATen/ops/one_hot.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/stack.h>

#include <cmath>

#include "catch_compat.hpp"
#include "step_test_support.hpp"
#include "training/optimizer.hpp"
#include "training/train_step.hpp"

using namespace flatface;
using namespace flatface::testing;
using catch_compat::Approx;

namespace {

// A context whose only parameter is the logit matrix itself: ∇_z of any loss is its gradient.
class LogitContext final : public StepContext {
 public:
  LogitContext(const at::Tensor& z, const at::Tensor& labels)
      : z_(z.clone().requires_grad_(true)), labels_(labels), params_{z_} {
    saved_.push_back(at::empty_like(z_.detach()));
  }
  at::Tensor forward(Pass pass) override {
    passes.push_back(pass);
    // At the second pass z holds z + ε and the saved copy holds z.
    if (pass == Pass::second) epsilon = z_.detach() - saved_[0];
    return z_;
  }
  const at::Tensor& labels() const override { return labels_; }
  void select_samples(const at::Tensor&) override {}
  const std::vector<at::Tensor>& parameters() const override { return params_; }
  void zero_grad() override {
    if (z_.grad().defined()) z_.mutable_grad() = at::Tensor();
  }
  void optimizer_step() override { grad_at_step = z_.grad().clone(); }
  std::vector<at::Tensor>& saved_weights() override { return saved_; }
  StepProgress progress() const override { return {}; }

  std::vector<Pass> passes;
  at::Tensor epsilon;
  at::Tensor grad_at_step;
  at::Tensor z_;

 private:
  at::Tensor labels_;
  std::vector<at::Tensor> params_;
  std::vector<at::Tensor> saved_;
};

TrainSettings sgd(double lr, double momentum, double weight_decay) {
  TrainSettings t;
  t.lr = lr;
  t.momentum = momentum;
  t.weight_decay = weight_decay;
  return t;
}

// A small float64 model: Linear+BN backbone and an ArcFace head, with a batch.
struct Model {
  std::shared_ptr<LinearBnBackbone> backbone = std::make_shared<LinearBnBackbone>(5, 4);
  std::shared_ptr<MarginHead> head;
  explicit Model(const std::string& head_name = "arcface") {
    backbone->to(at::kDouble);
    head = head_plugin(head_name, 3, 4, {{"s", num(8.0)}, {"m", num(0.3)}});
  }
};

at::Tensor batch_x() {
  return doubles(
      {0.3, -1.2, 0.5,  0.9,  -0.1, 1.1,  0.4,  -0.7, 0.2,  0.6,  -0.5, 0.8,  1.3,  -0.9, 0.05,
       0.7, 0.1,  -0.3, -1.0, 0.45, -0.8, 0.25, 0.9,  0.35, -0.6, 0.15, -0.4, 0.65, 1.2,  -0.2},
      {6, 5});
}
at::Tensor batch_y() {
  return longs({0, 2, 1, 1, 0, 2});
}

}  // namespace

CATCH_TEST_CASE("none takes one plain SGD step on the margin-loss gradient (eq. 15)") {
  Model model, copy;
  copy_state(*copy.backbone, *model.backbone);
  copy_state(*copy.head, *model.head);
  auto settings = sgd(0.1, 0.9, 5e-4);
  auto optimizer = make_sgd(*model.backbone, *model.head, settings);
  TrainStep step(model.backbone, model.head, *optimizer, {});
  auto none = strategy("none");
  CATCH_CHECK_FALSE(none->two_pass());

  auto w0 = clones(trainable(*copy.backbone, *copy.head));
  at::Tensor loss = margin_loss_of(*copy.backbone, *copy.head, batch_x(), batch_y());
  auto g = grad_of(loss, trainable(*copy.backbone, *copy.head));

  StepStats stats = step.run(*none, batch_x(), batch_y());
  auto w1 = trainable(*model.backbone, *model.head);
  for (std::size_t i = 0; i < w1.size(); ++i) {
    // first step of momentum SGD: w − lr (g + wd w)
    CATCH_CHECK(max_abs_diff(w1[i], w0[i] - 0.1 * (g[i] + 5e-4 * w0[i])) < 1e-14);
  }
  CATCH_CHECK(stats.loss == Approx(loss.item<double>()).epsilon(1e-13));
  CATCH_CHECK(stats.grad_norm == Approx(norm_of(g)).epsilon(1e-13));
  // One pass: the second pass's statistics are not computed.
  CATCH_CHECK(!stats.perturbation_loss);
  CATCH_CHECK(!stats.loss_perturbed);
  CATCH_CHECK(!stats.epsilon_norm);
}

CATCH_TEST_CASE("SAM's epsilon is rho times the gradient over its one global norm (eq. 17)") {
  Model model, copy;
  copy_state(*copy.backbone, *model.backbone);
  copy_state(*copy.head, *model.head);
  auto optimizer = make_sgd(*model.backbone, *model.head, sgd(0.1, 0.9, 5e-4));
  TrainStep step(model.backbone, model.head, *optimizer, {});
  auto sam = recorded(strategy("sam", {{"rho", num(0.2)}}));
  CATCH_CHECK(sam->two_pass());

  at::Tensor loss = margin_loss_of(*copy.backbone, *copy.head, batch_x(), batch_y());
  auto g = grad_of(loss, trainable(*copy.backbone, *copy.head));
  StepStats stats = step.run(*sam, batch_x(), batch_y());

  const auto& eps = sam->epsilon;
  CATCH_REQUIRE(eps.size() == g.size());
  CATCH_CHECK(norm_of(eps) == Approx(0.2).epsilon(1e-13));
  for (std::size_t i = 0; i < g.size(); ++i) {
    CATCH_CHECK(max_abs_diff(eps[i], 0.2 * g[i] / (norm_of(g) + 1e-12)) < 1e-15);
  }
  CATCH_CHECK(stats.epsilon_norm == Approx(0.2).epsilon(1e-13));
  CATCH_CHECK(stats.grad_norm == Approx(norm_of(g)).epsilon(1e-13));
  CATCH_CHECK(stats.loss == Approx(loss.item<double>()).epsilon(1e-13));
  CATCH_CHECK(stats.perturbation_loss == stats.loss);
}

CATCH_TEST_CASE("a SAM step applies SGD to the gradient taken at w + epsilon (eq. 18)") {
  const double rho = 0.1, lr = 0.1, wd = 5e-4;
  Model model, copy;
  copy_state(*copy.backbone, *model.backbone);
  copy_state(*copy.head, *model.head);
  auto optimizer = make_sgd(*model.backbone, *model.head, sgd(lr, 0.9, wd));
  TrainStep step(model.backbone, model.head, *optimizer, {});
  auto sam = strategy("sam", {{"rho", num(rho)}});

  // The same step computed here on the copy.
  auto w = trainable(*copy.backbone, *copy.head);
  auto w0 = clones(w);
  auto g = grad_of(margin_loss_of(*copy.backbone, *copy.head, batch_x(), batch_y()), w);
  const double g_norm = norm_of(g);
  {
    at::NoGradGuard no_grad;
    for (std::size_t i = 0; i < w.size(); ++i) w[i].add_(rho * g[i] / (g_norm + 1e-12));
  }
  at::Tensor loss_perturbed = margin_loss_of(*copy.backbone, *copy.head, batch_x(), batch_y());
  auto g_perturbed = grad_of(loss_perturbed, w);

  StepStats stats = step.run(*sam, batch_x(), batch_y());
  auto w1 = trainable(*model.backbone, *model.head);
  for (std::size_t i = 0; i < w1.size(); ++i) {
    CATCH_CHECK(max_abs_diff(w1[i], w0[i] - lr * (g_perturbed[i] + wd * w0[i])) < 1e-14);
  }
  CATCH_CHECK(stats.loss_perturbed == Approx(loss_perturbed.item<double>()).epsilon(1e-13));
}

CATCH_TEST_CASE("SAM restores the weights bit-exactly before the optimizer step") {
  Model model;
  auto optimizer = make_sgd(*model.backbone, *model.head, sgd(0.0, 0.0, 0.0));
  TrainStep step(model.backbone, model.head, *optimizer, {});
  auto before = clones(trainable(*model.backbone, *model.head));
  for (const char* name : {"sam", "asam", "aace"}) {
    CATCH_CAPTURE(name);
    auto s = recorded(strategy(name, {{"rho", num(0.5)}}));
    step.run(*s, batch_x(), batch_y());
    auto after = trainable(*model.backbone, *model.head);
    for (std::size_t i = 0; i < after.size(); ++i) CATCH_CHECK(after[i].equal(before[i]));
    CATCH_CHECK(norm_of(s->epsilon) > 0);
  }
}

CATCH_TEST_CASE("SAM around SGD reproduces three steps of davda54's SAM on a linear classifier") {
  auto ref = load_json(vectors("sam_steps.json"));
  at::Tensor x = matrix_of(ref.at("x"));
  at::Tensor y = labels_of(ref.at("y"));
  at::Tensor w0 = matrix_of(ref.at("weight0"));
  auto backbone = std::make_shared<IdentityBackbone>(w0.size(1));
  auto head = std::make_shared<LinearHead>(w0.size(0), w0.size(1));
  head->to(at::kDouble);
  set_parameter(*head, "weight", w0);
  set_parameter(*head, "bias", doubles(numbers_of(ref.at("bias0")), {w0.size(0)}));
  auto optimizer = make_sgd(*backbone, *head,
                            sgd(ref.at("lr").get<double>(), ref.at("momentum").get<double>(),
                                ref.at("weight_decay").get<double>()));
  TrainStep step(backbone, head, *optimizer, {});
  auto sam = strategy("sam", {{"rho", num(ref.at("rho").get<double>())}});

  for (std::size_t k = 0; k < ref.at("after_each_step").size(); ++k) {
    CATCH_CAPTURE(k);
    step.run(*sam, x, y);
    const auto& expected = ref.at("after_each_step").at(k);
    auto params = head->named_parameters();
    CATCH_CHECK(max_abs_diff(params["weight"], matrix_of(expected.at("weight"))) < 1e-10);
    CATCH_CHECK(max_abs_diff(params["bias"],
                             doubles(numbers_of(expected.at("bias")), {w0.size(0)})) < 1e-10);
  }
}

CATCH_TEST_CASE("AACE's loss and its gradient equal the AACE authors' code (eqs. 11-14)") {
  auto ref = load_json(vectors("aace_loss.json"));
  at::Tensor z = matrix_of(ref.at("logits"));
  at::Tensor y = labels_of(ref.at("labels"));
  const double rho = 0.05;
  LogitContext ctx(z, y);
  StepStats stats = strategy("aace", {{"rho", num(rho)}})->step(ctx);

  CATCH_CHECK(stats.perturbation_loss ==
              Approx(ref.at("loss_mean_kl").get<double>()).epsilon(1e-12));
  // ε = −ρ ∇L_AACE, not normalised (eq. 20); here ∇ is the gradient w.r.t. the logits.
  CATCH_CHECK(max_abs_diff(ctx.epsilon, -rho * matrix_of(ref.at("grad_logits"))) < 1e-14);
  CATCH_CHECK(!stats.grad_norm);  // ∇L_margin(w) is never formed
  CATCH_CHECK(stats.epsilon_norm ==
              Approx(rho * matrix_of(ref.at("grad_logits")).norm().item<double>()));
}

CATCH_TEST_CASE("AACE's target has no mass on the true class and sums to one") {
  at::Tensor z = doubles({2.0, -1.0, 0.5, 0.0, 30.0, -2.0, 1.0, 1.0, 1.0}, {3, 3});
  at::Tensor y = longs({0, 1, 2});
  LogitContext ctx(z, y);
  strategy("aace", {{"rho", num(1.0)}})->step(ctx);
  // ε = −∇L_AACE = −(q − τ)/N: τ = q + N ε.
  at::Tensor q = z.softmax(1);
  at::Tensor tau = q + 3.0 * ctx.epsilon;
  // ε is observed as (z + ε) − z, so it carries one rounding of z (|z| ≤ 30): ~1e-14.
  at::Tensor on_true = tau.gather(1, y.view({-1, 1}));
  CATCH_CHECK(on_true.abs().max().item<double>() < 1e-13);
  CATCH_CHECK(max_abs_diff(tau.sum(1), at::ones({3}, at::kDouble)) < 1e-13);
  // τ_j = q_j / Σ_{k≠y} q_k: for row 2 (equal logits) 1/2 on each other class.
  CATCH_CHECK(max_abs_diff(tau[2], doubles({0.5, 0.5, 0.0}, {3})) < 1e-15);
}

CATCH_TEST_CASE("AACE with normalize_target = false uses eq. 13's target q_j, unnormalised") {
  at::Tensor z = doubles({2.0, -1.0, 0.5, 0.0, 3.0, -2.0}, {2, 3});
  at::Tensor y = longs({0, 1});
  LogitContext ctx(z, y);
  strategy("aace", {{"rho", num(1.0)}, {"normalize_target", flag(false)}})->step(ctx);
  // −Σ τ log q with τ = q masked at y: ∂/∂z = (1 − q_y) q − τ, over N = 2.
  at::Tensor q = z.softmax(1);
  at::Tensor onehot = at::one_hot(y, 3).to(at::kDouble);
  at::Tensor tau = q * (1 - onehot);
  at::Tensor q_y = (q * onehot).sum(1, true);
  at::Tensor grad = ((1 - q_y) * q - tau) / 2.0;
  CATCH_CHECK(max_abs_diff(ctx.epsilon, -grad) < 1e-15);
}

CATCH_TEST_CASE(
    "two-pass strategies make one first and one second pass and step on the second gradient") {
  at::Tensor z = doubles({2.0, -1.0, 0.5, 0.0, 3.0, -2.0}, {2, 3});
  at::Tensor y = longs({0, 1});
  for (const char* name : {"sam", "asam", "aace"}) {
    CATCH_CAPTURE(name);
    LogitContext ctx(z, y);
    strategy(name, {{"rho", num(0.3)}})->step(ctx);
    CATCH_REQUIRE(ctx.passes.size() == 2);
    CATCH_CHECK((ctx.passes[0] == Pass::first && ctx.passes[1] == Pass::second));
    // the logits are the parameters, so the optimizer sees ∇CE at z + ε: (softmax(z + ε) − 1_y)/N
    at::Tensor at_perturbed = (z + ctx.epsilon).softmax(1) - at::one_hot(y, 3).to(at::kDouble);
    CATCH_CHECK(max_abs_diff(ctx.grad_at_step, at_perturbed / 2.0) < 1e-15);
    CATCH_CHECK(ctx.z_.detach().equal(z));  // restored before the step
  }
}

CATCH_TEST_CASE("ASAM's epsilon is rho T^2 g / ||T g|| with T = |w| + 0.01 on weight matrices") {
  const double rho = 0.5;
  auto backbone = std::make_shared<IdentityBackbone>(5);
  auto head = std::make_shared<LinearHead>(3, 5);
  head->to(at::kDouble);
  set_parameter(
      *head, "weight",
      doubles({0.2, -0.5, 0.0, 1.5, -0.1, 0.3, 0.7, -0.9, 0.05, 0.4, -1.1, 0.6, 0.25, -0.35, 0.8},
              {3, 5}));
  set_parameter(*head, "bias", doubles({0.1, -0.2, 0.3}, {3}));
  auto w = trainable(*backbone, *head);  // weight [3,5], bias [3]
  auto w0 = clones(w);
  auto g = grad_of(margin_loss_of(*backbone, *head, batch_x(), batch_y()), w);

  auto optimizer = make_sgd(*backbone, *head, sgd(0.0, 0.0, 0.0));
  TrainStep step(backbone, head, *optimizer, {});
  auto asam = recorded(strategy("asam", {{"rho", num(rho)}}));
  StepStats stats = step.run(*asam, batch_x(), batch_y());

  at::Tensor t_weight = w0[0].abs() + 0.01;                         // the bias (1-d) keeps T = 1
  const double tg_norm = norm_of({t_weight * g[0], g[1]}) + 1e-12;  // guarded as SAM's
  const auto& eps = asam->epsilon;
  CATCH_CHECK(max_abs_diff(eps[0], rho * t_weight * t_weight * g[0] / tg_norm) < 1e-14);
  CATCH_CHECK(max_abs_diff(eps[1], rho * g[1] / tg_norm) < 1e-14);
  CATCH_CHECK(stats.grad_norm == Approx(norm_of(g)).epsilon(1e-13));
  CATCH_CHECK(stats.epsilon_norm == Approx(norm_of(eps)).epsilon(1e-13));
}

CATCH_TEST_CASE("strategies read rho with the paper's defaults and reject unknown or bad options") {
  CATCH_CHECK_NOTHROW(strategy("sam"));
  CATCH_CHECK_THROWS_AS(strategy("sam", {{"rhoo", num(0.1)}}), ConfigError);
  CATCH_CHECK_THROWS_AS(strategy("sam", {{"rho", num(-0.1)}}), ConfigError);
  CATCH_CHECK_THROWS_AS(strategy("none", {{"rho", num(0.1)}}), ConfigError);
  CATCH_CHECK_THROWS_AS(strategy("aace", {{"normalize_target", num(1.0)}}), ConfigError);
  CATCH_CHECK_NOTHROW(strategy("asam", {{"eta", num(0.0)}}));

  // Default rho: SAM 0.05 gives ‖ε‖ = 0.05 (up to the 1e-12 in ‖g‖ + 1e-12).
  at::Tensor z = doubles({2.0, -1.0, 0.5, 0.0, 3.0, -2.0}, {2, 3});
  LogitContext ctx(z, longs({0, 1}));
  StepStats stats = strategy("sam")->step(ctx);
  CATCH_CHECK(stats.epsilon_norm == Approx(0.05).epsilon(1e-9));
}
