// The cheaper sharpness-aware strategies (LookSAM, AE-SAM, ESAM, GSAM), loaded through the plugin
// registry, against second implementations written here from each paper's formulas on a copy of
// the model, in float64: the perturbation ε, which steps take the second pass, and the weights
// after every step of momentum SGD.
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/log_softmax.h>
#include <ATen/ops/one_hot.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/topk.h>
#include <torch/utils.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "catch_compat.hpp"
#include "step_test_support.hpp"
#include "test_support.hpp"
#include "training/optimizer.hpp"
#include "training/train_step.hpp"

using namespace flatface;
using namespace flatface::testing;
using catch_compat::Approx;
using catch_compat::Contains;

namespace {

TrainSettings sgd(double lr, double momentum, double weight_decay) {
  TrainSettings t;
  t.lr = lr;
  t.momentum = momentum;
  t.weight_decay = weight_decay;
  return t;
}

// A small float64 model: Linear+BN backbone and an ArcFace head; 5 parameter tensors. The
// Linear's bias, just before BN, has a gradient of rounding noise only; ESAM, which normalises
// the gradient of whichever tensors it draws, is tested with that bias frozen (4 tensors).
struct Model {
  // Fixed initial weights: with unseeded ones, about one process in ten drew a LookSAM case where
  // g_s was so close to g that g_v = g_s − proj_g(g_s) kept few digits and the reused step
  // amplified them past the tolerances below.
  bool seeded = (torch::manual_seed(20261130), true);
  std::shared_ptr<LinearBnBackbone> backbone = std::make_shared<LinearBnBackbone>(5, 4);
  std::shared_ptr<MarginHead> head;
  bool train_fc_bias;
  explicit Model(bool train_fc_bias_ = true) : train_fc_bias(train_fc_bias_) {
    backbone->to(at::kDouble);
    if (!train_fc_bias) backbone->named_parameters()["fc.bias"].requires_grad_(false);
    head = head_plugin("arcface", 3, 4, {{"s", num(8.0)}, {"m", num(0.3)}});
  }
};

// A different batch at every step, so that successive gradients differ.
at::Tensor batch_x(int step) {
  at::Tensor base = doubles(
      {0.3, -1.2, 0.5,  0.9,  -0.1, 1.1,  0.4,  -0.7, 0.2,  0.6,  -0.5, 0.8,  1.3,  -0.9, 0.05,
       0.7, 0.1,  -0.3, -1.0, 0.45, -0.8, 0.25, 0.9,  0.35, -0.6, 0.15, -0.4, 0.65, 1.2,  -0.2},
      {6, 5});
  at::Tensor drift =
      doubles({0.2, 0.1,  -0.3, 0.0, 0.4,  -0.2, 0.3, 0.1,  -0.1, 0.0, 0.5,  -0.4, 0.2, 0.1, -0.3,
               0.0, -0.2, 0.6,  0.1, -0.1, 0.3,  0.0, -0.5, 0.2,  0.1, -0.3, 0.2,  0.0, 0.4, 0.1},
              {6, 5});
  return base + static_cast<double>(step) * drift;
}
at::Tensor batch_y() {
  return longs({0, 2, 1, 1, 0, 2});
}

using Tensors = std::vector<at::Tensor>;

double dot(const Tensors& a, const Tensors& b) {
  double sum = 0;
  for (std::size_t i = 0; i < a.size(); ++i) sum += (a[i] * b[i]).sum().item<double>();
  return sum;
}
Tensors axpy(double a, const Tensors& x, const Tensors& y) {  // a x + y
  Tensors out;
  for (std::size_t i = 0; i < x.size(); ++i) out.push_back(a * x[i] + y[i]);
  return out;
}
Tensors scaled(double a, const Tensors& x) {
  Tensors out;
  for (const auto& t : x) out.push_back(a * t);
  return out;
}

// The same model, stepped by hand: gradients by autograd on the loss written here, and
// momentum SGD (d = g + wd w; b = d on the first step, else μ b + d; w ← w − lr b).
struct Mirror {
  Model m;
  Tensors w;
  Tensors buffer;
  double lr, momentum, wd;

  Mirror(const Model& from, double lr_, double momentum_, double wd_)
      : m(from.train_fc_bias), lr(lr_), momentum(momentum_), wd(wd_) {
    copy_state(*m.backbone, *from.backbone);
    copy_state(*m.head, *from.head);
    w = trainable(*m.backbone, *m.head);
  }
  at::Tensor logits(const at::Tensor& x, const at::Tensor& y) {
    return m.head->logits(m.backbone->forward(x), y);
  }
  // ∇L_margin at the current weights.
  Tensors grad(const at::Tensor& x, const at::Tensor& y) {
    return grad_of(at::cross_entropy_loss(logits(x, y), y), w);
  }
  double loss(const at::Tensor& x, const at::Tensor& y) {
    at::NoGradGuard no_grad;
    return at::cross_entropy_loss(logits(x, y), y).item<double>();
  }
  at::Tensor per_sample_loss(const at::Tensor& x, const at::Tensor& y) {
    at::NoGradGuard no_grad;
    return at::cross_entropy_loss(logits(x, y), y, {}, at::Reduction::None);
  }
  // ∇L_AACE: the cross-entropy with AACE's target τ (q over the other classes, 0 on y, q = softmax
  // of the logits, held constant); τ's entropy is constant, so KL(τ‖q) has the same gradient.
  Tensors aace_grad(const at::Tensor& x, const at::Tensor& y) {
    at::Tensor z = logits(x, y);
    at::Tensor q = z.detach().softmax(1);
    at::Tensor other = 1 - at::one_hot(y, z.size(1)).to(at::kDouble);
    at::Tensor tau = q * other / (q * other).sum(1, true);
    return grad_of(-(tau * z.log_softmax(1)).sum(1).mean(), w);
  }
  void add(const Tensors& d) {
    at::NoGradGuard no_grad;
    for (std::size_t i = 0; i < w.size(); ++i) w[i].add_(d[i]);
  }
  void set(const Tensors& values) {
    at::NoGradGuard no_grad;
    for (std::size_t i = 0; i < w.size(); ++i) w[i].copy_(values[i]);
  }
  // The gradient at w + ε, with w restored afterwards.
  Tensors grad_at(const Tensors& eps, const at::Tensor& x, const at::Tensor& y) {
    Tensors w0 = clones(w);
    add(eps);
    Tensors g = grad(x, y);
    set(w0);
    return g;
  }
  void sgd(const Tensors& g) {
    at::NoGradGuard no_grad;
    const bool first = buffer.empty();
    for (std::size_t i = 0; i < w.size(); ++i) {
      at::Tensor d = g[i] + wd * w[i];
      if (first)
        buffer.push_back(d.clone());
      else
        buffer[i] = momentum * buffer[i] + d;
      w[i].sub_(lr * buffer[i]);
    }
  }
};

double max_diff(const Tensors& a, const Tensors& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, max_abs_diff(a[i], b[i]));
  return m;
}

// A plugin step beside its mirror: the model, its optimizer and TrainStep.
struct Rig {
  Model model;
  Mirror mirror;
  std::unique_ptr<torch::optim::SGD> optimizer;
  std::unique_ptr<TrainStep> step;
  Rig(double lr, double momentum, double wd, bool train_fc_bias = true)
      : model(train_fc_bias),
        mirror(model, lr, momentum, wd),
        optimizer(make_sgd(*model.backbone, *model.head, sgd(lr, momentum, wd))),
        step(std::make_unique<TrainStep>(model.backbone, model.head, *optimizer,
                                         TrainStepOptions{})) {}
  Tensors weights() { return trainable(*model.backbone, *model.head); }
};

// ESAM's draw, written again: SplitMix64 of (seed, step, tensor), kept when its uniform < β.
std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
std::vector<bool> esam_kept(std::uint64_t seed, std::int64_t step, std::size_t n, double beta) {
  std::vector<bool> kept;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t h = splitmix64(splitmix64(splitmix64(seed) ^ static_cast<std::uint64_t>(step)) ^
                                 static_cast<std::uint64_t>(i));
    kept.push_back(static_cast<double>(h >> 11) / 9007199254740992.0 < beta);
  }
  return kept;
}

// A context whose only parameter is the logit matrix itself: ∇_z CE = (softmax(z) − 1_y)/N.
class LogitContext final : public StepContext {
 public:
  LogitContext(const at::Tensor& z, const at::Tensor& labels)
      : z_(z.clone().requires_grad_(true)), labels_(labels), params_{z_} {
    saved_.push_back(at::empty_like(z_.detach()));
  }
  at::Tensor forward(Pass pass) override {
    passes.push_back(pass);
    return z_;
  }
  const at::Tensor& labels() const override { return labels_; }
  void select_samples(const at::Tensor&) override {}
  const std::vector<at::Tensor>& parameters() const override { return params_; }
  void zero_grad() override {
    if (z_.grad().defined()) z_.mutable_grad() = at::Tensor();
  }
  void optimizer_step() override {}
  std::vector<at::Tensor>& saved_weights() override { return saved_; }
  StepProgress progress() const override { return at; }
  Collectives& collectives() override { return *ranks; }

  std::vector<Pass> passes;
  StepProgress at;
  Collectives* ranks = &one_process();

 private:
  at::Tensor z_;
  at::Tensor labels_;
  std::vector<at::Tensor> params_;
  std::vector<at::Tensor> saved_;
};

// Rank 0 of two, whose partner adds `partner` to each sum it takes part in: AE-SAM's vote.
class VotingPartner final : public Collectives {
 public:
  explicit VotingPartner(double partner) : partner_(partner) {}
  int world_size() const override { return 2; }
  void all_reduce_sum(const std::vector<at::Tensor>& tensors) override {
    for (const auto& t : tensors) {
      votes.push_back(t.item<double>());
      t.add_(partner_);
    }
  }

  std::vector<double> votes;  // this rank's, as it gave them

 private:
  double partner_;
};

}  // namespace

CATCH_TEST_CASE(
    "LookSAM takes SAM's step every k-th step and in between adds alpha ||g||/||g_v|| g_v") {
  const double rho = 0.2, alpha = 0.7, lr = 0.1, mu = 0.9, wd = 5e-4;
  const int k = 3;
  for (const std::string direction : {"sam", "aace"}) {
    CATCH_CAPTURE(direction);
    Rig rig(lr, mu, wd);
    auto look = recorded(strategy("looksam", {{"rho", num(rho)},
                                              {"k", integer(k)},
                                              {"alpha", num(alpha)},
                                              {"direction", text(direction)}}));
    CATCH_CHECK(look->two_pass());
    auto& ref = rig.mirror;
    Tensors g_v;
    for (int t = 0; t < 5; ++t) {
      CATCH_CAPTURE(t);
      const at::Tensor x = batch_x(t), y = batch_y();
      const Tensors g = ref.grad(x, y);
      const double g_norm = norm_of(g);
      const bool full = t % k == 0;  // steps 0 and 3 refresh g_v
      Tensors step_on, eps;
      if (full) {
        eps = direction == "sam" ? scaled(rho / (g_norm + 1e-12), g)
                                 : scaled(-rho, ref.aace_grad(x, y));
        const Tensors g_s = ref.grad_at(eps, x, y);
        g_v = axpy(-dot(g, g_s) / (g_norm * g_norm), g, g_s);  // g_s less its projection on g
        // The projection's rounding is relative to the vectors it starts from (g_s and g).
        CATCH_CHECK(std::abs(dot(g_v, g)) < 1e-12 * norm_of(g_s) * g_norm);
        step_on = g_s;
      } else {
        step_on = axpy(alpha * g_norm / norm_of(g_v), g_v, g);
      }
      StepStats s = rig.step->run(*look, x, y);
      CATCH_CHECK(s.second_pass == full);
      CATCH_CHECK(s.grad_norm == Approx(g_norm).epsilon(1e-10));
      if (full) {
        CATCH_REQUIRE(look->epsilon.size() == eps.size());
        CATCH_CHECK(max_diff(look->epsilon, eps) < 1e-11);
        CATCH_CHECK(s.epsilon_norm == Approx(norm_of(eps)).epsilon(1e-10));
      } else {
        CATCH_CHECK(look->epsilon.empty());
        CATCH_CHECK(!s.epsilon_norm);
        CATCH_CHECK(!s.loss_perturbed);
      }
      ref.sgd(step_on);
      // AACE's ε, computed two ways, differs by ~1e-14; the reused step amplifies it by ‖g‖/‖g_v‖.
      CATCH_CHECK(max_diff(rig.weights(), ref.w) < 1e-10);
    }
  }
}

CATCH_TEST_CASE(
    "AE-SAM takes SAM's step only when ||g||^2 >= mu_t + c_t sigma_t and a plain step otherwise") {
  const double rho = 0.1, delta = 0.5, lambda1 = -1.0, lambda2 = 3.0, lr = 0.1, mu = 0.9, wd = 5e-4;
  const std::int64_t total = 6;
  for (const std::string direction : {"sam", "aace"}) {
    CATCH_CAPTURE(direction);
    Rig rig(lr, mu, wd);
    auto ae = recorded(strategy("ae-sam", {{"rho", num(rho)},
                                           {"delta", num(delta)},
                                           {"lambda1", num(lambda1)},
                                           {"lambda2", num(lambda2)},
                                           {"direction", text(direction)}}));
    auto& ref = rig.mirror;
    double mean = 0, variance = 0;
    int sam_steps = 0, plain_steps = 0;
    for (std::int64_t t = 0; t < total; ++t) {
      CATCH_CAPTURE(t);
      const at::Tensor x = batch_x(static_cast<int>(t)), y = batch_y();
      const Tensors g = ref.grad(x, y);
      const double sq = std::pow(norm_of(g), 2);
      mean = delta * mean + (1 - delta) * sq;
      variance = delta * variance + (1 - delta) * (sq - mean) * (sq - mean);
      const double frac = static_cast<double>(t) / static_cast<double>(total);
      const double c = lambda1 * frac + lambda2 * (1 - frac);
      const bool sam = sq >= mean + c * std::sqrt(variance);
      Tensors step_on = g, eps;
      if (sam) {
        eps = direction == "sam" ? scaled(rho / (norm_of(g) + 1e-12), g)
                                 : scaled(-rho, ref.aace_grad(x, y));
        step_on = ref.grad_at(eps, x, y);
      }
      rig.step->set_progress(t, total);
      StepStats s = rig.step->run(*ae, x, y);
      CATCH_CHECK(s.second_pass == sam);
      if (sam) {
        ++sam_steps;
        CATCH_CHECK(max_diff(ae->epsilon, eps) < 1e-11);
      } else {
        ++plain_steps;
        CATCH_CHECK(ae->epsilon.empty());
      }
      ref.sgd(step_on);
      CATCH_CHECK(max_diff(rig.weights(), ref.w) < 1e-10);
    }
    // The schedule starts strict (c = 3 skips the first step) and ends lenient.
    CATCH_CHECK(plain_steps >= 1);
    CATCH_CHECK(sam_steps >= 1);
  }
}

CATCH_TEST_CASE("AE-SAM judges ||g||^2 against mu_t + c sigma_t: a sequence worked by hand") {
  // Logits z = [a, 0] with label 0: g = (q_0 − 1, 1 − q_0), ‖g‖² = 2 (1 − q_0)²; a is chosen
  // for the ‖g‖² wanted. δ = 0.5, c = 1 (λ₁ = λ₂ = 1), μ and σ² from 0:
  //   ‖g‖² = 1.0: μ = 0.5, σ² = 0.5·0.5² = 0.125, σ = 0.354; 1.0 ≥ 0.854: SAM
  //   ‖g‖² = 0.7: μ = 0.6, σ² = 0.0625 + 0.5·0.1² = 0.0675, σ = 0.260; 0.7 < 0.860: plain
  //               (σ² in place of σ would give 0.668: SAM)
  //   ‖g‖² = 1.2: μ = 0.9, σ² = 0.03375 + 0.5·0.3² = 0.07875, σ = 0.281; 1.2 ≥ 1.181: SAM
  //   ‖g‖² = 0.9: μ = 0.9, σ² = 0.039375, σ = 0.198; 0.9 < 1.098: plain
  auto ae = strategy(
      "ae-sam",
      {{"rho", num(0.1)}, {"delta", num(0.5)}, {"lambda1", num(1.0)}, {"lambda2", num(1.0)}});
  const std::vector<std::pair<double, bool>> steps{
      {1.0, true}, {0.7, false}, {1.2, true}, {0.9, false}};
  for (std::size_t t = 0; t < steps.size(); ++t) {
    const auto [sq, sam] = steps[t];
    CATCH_CAPTURE(t);
    const double q0 = 1 - std::sqrt(sq / 2);
    LogitContext ctx(doubles({std::log(q0 / (1 - q0)), 0.0}, {1, 2}), longs({0}));
    ctx.at.step = static_cast<std::int64_t>(t);
    ctx.at.total_steps = 4;
    StepStats s = ae->step(ctx);
    CATCH_REQUIRE(s.grad_norm);
    CATCH_CHECK(*s.grad_norm * *s.grad_norm == Approx(sq).epsilon(1e-10));
    CATCH_CHECK(s.second_pass == sam);
    CATCH_CHECK(ctx.passes.size() == (sam ? 2u : 1u));
  }
}

CATCH_TEST_CASE(
    "AE-SAM's ranks make the second pass together, where any of them finds a step sharp") {
  // The sequence worked above: ‖g‖² = 1.0 is sharp on this rank, then 0.7 flat.
  for (const double partner : {0.0, 1.0}) {
    CATCH_CAPTURE(partner);
    auto ae = strategy(
        "ae-sam",
        {{"rho", num(0.1)}, {"delta", num(0.5)}, {"lambda1", num(1.0)}, {"lambda2", num(1.0)}});
    VotingPartner ranks(partner);
    std::vector<bool> second_pass;
    for (const double sq : {1.0, 0.7}) {
      const double q0 = 1 - std::sqrt(sq / 2);
      LogitContext ctx(doubles({std::log(q0 / (1 - q0)), 0.0}, {1, 2}), longs({0}));
      ctx.ranks = &ranks;
      ctx.at.step = static_cast<std::int64_t>(second_pass.size());
      ctx.at.total_steps = 4;
      second_pass.push_back(ae->step(ctx).second_pass);
      CATCH_CHECK(ctx.passes.size() == (second_pass.back() ? 2u : 1u));
    }
    CATCH_CHECK(ranks.votes == std::vector<double>{1.0, 0.0});  // this rank's own judgement
    CATCH_CHECK(second_pass == std::vector<bool>{true, partner > 0});
  }
}

CATCH_TEST_CASE("AE-SAM's running statistics and LookSAM's g_v carry over through state()") {
  // Four steps in one go against two steps, a new strategy loaded with the state, two more.
  struct Case {
    std::string name;
    std::map<std::string, Options::Value> options;
  };
  const std::vector<Case> cases{
      {"looksam", {{"rho", num(0.2)}, {"k", integer(3)}}},
      {"ae-sam",
       {{"rho", num(0.2)}, {"delta", num(0.5)}, {"lambda1", num(0.0)}, {"lambda2", num(0.0)}}}};
  for (const auto& c : cases) {
    CATCH_CAPTURE(c.name);
    Rig a(0.1, 0.9, 5e-4), b(0.1, 0.9, 5e-4);
    copy_state(*b.model.backbone, *a.model.backbone);
    copy_state(*b.model.head, *a.model.head);
    auto whole = strategy(c.name, c.options);
    auto first_half = strategy(c.name, c.options);
    auto second_half = strategy(c.name, c.options);
    for (int t = 0; t < 4; ++t) {
      a.step->set_progress(t, 4);
      a.step->run(*whole, batch_x(t), batch_y());
      b.step->set_progress(t, 4);
      if (t == 2) second_half->load_state(first_half->state());
      b.step->run(t < 2 ? *first_half : *second_half, batch_x(t), batch_y());
    }
    CATCH_CHECK_FALSE(whole->state().empty());
    CATCH_CHECK(max_diff(a.weights(), b.weights()) == 0);
  }
}

CATCH_TEST_CASE(
    "ESAM perturbs a seeded random subset of tensors by (rho/beta) g/||m g|| and "
    "takes the second pass on the gamma samples whose loss rises most") {
  const double rho = 0.3, beta = 0.5, gamma = 0.5, lr = 0.1, mu = 0.9, wd = 5e-4;
  std::vector<std::vector<bool>> masks_by_seed;
  for (const std::uint64_t seed : {7, 8}) {
    CATCH_CAPTURE(seed);
    Rig rig(lr, mu, wd, /*train_fc_bias=*/false);
    auto esam = recorded(
        strategy("esam", {{"rho", num(rho)}, {"beta", num(beta)}, {"gamma", num(gamma)}}, seed));
    auto& ref = rig.mirror;
    std::vector<bool> all_masks;
    bool some_left_out = false, some_kept = false;
    for (int t = 0; t < 4; ++t) {
      CATCH_CAPTURE(t);
      const at::Tensor x = batch_x(t), y = batch_y();
      const auto kept = esam_kept(seed, t, ref.w.size(), beta);
      all_masks.insert(all_masks.end(), kept.begin(), kept.end());
      const Tensors g = ref.grad(x, y);
      Tensors kept_g;
      for (std::size_t i = 0; i < g.size(); ++i)
        if (kept[i]) kept_g.push_back(g[i]);
      const double kept_norm = norm_of(kept_g);
      Tensors eps;
      for (std::size_t i = 0; i < g.size(); ++i) {
        eps.push_back(kept[i] ? (rho / beta) * g[i] / (kept_norm + 1e-12) : at::zeros_like(g[i]));
        (kept[i] ? some_kept : some_left_out) = true;
      }
      // The loss rise per sample, and the second pass on the top ⌊γN⌋ = 3 of 6.
      const at::Tensor before = ref.per_sample_loss(x, y);
      const Tensors w0 = clones(ref.w);
      ref.add(eps);
      const at::Tensor after = ref.per_sample_loss(x, y);
      const at::Tensor rows = std::get<0>(at::sort(std::get<1>(at::topk(after - before, 3))));
      const at::Tensor xs = x.index_select(0, rows), ys = y.index_select(0, rows);
      const Tensors g_selected = ref.grad(xs, ys);
      ref.set(w0);

      StepStats s = rig.step->run(*esam, x, y);
      CATCH_CHECK(s.second_pass);
      CATCH_REQUIRE(esam->epsilon.size() == eps.size());
      CATCH_CHECK(max_diff(esam->epsilon, eps) < 1e-11);
      for (std::size_t i = 0; i < eps.size(); ++i)
        if (!kept[i]) CATCH_CHECK(esam->epsilon[i].abs().max().item<double>() == 0);
      CATCH_CHECK(s.loss_perturbed == Approx(after.mean().item<double>()).epsilon(1e-10));
      const bool any_kept = std::any_of(kept.begin(), kept.end(), [](bool k) { return k; });
      CATCH_CHECK(s.epsilon_norm == Approx(any_kept ? rho / beta : 0.0).epsilon(1e-9));
      const bool all_kept = std::all_of(kept.begin(), kept.end(), [](bool k) { return k; });
      CATCH_CHECK(s.grad_norm.has_value() == all_kept);
      ref.sgd(g_selected);
      CATCH_CHECK(max_diff(rig.weights(), ref.w) < 1e-10);
      for (const auto& p : rig.weights()) CATCH_CHECK(p.requires_grad());  // put back
    }
    CATCH_CHECK(some_kept);
    CATCH_CHECK(some_left_out);
    masks_by_seed.push_back(all_masks);
  }
  CATCH_CHECK(masks_by_seed[0] != masks_by_seed[1]);  // the seed matters
}

CATCH_TEST_CASE("ESAM keeps each tensor with probability beta over many steps, reproducibly") {
  const double beta = 0.3;
  auto kept_counts = [&](std::uint64_t seed) {
    Rig rig(0.01, 0.0, 0.0, /*train_fc_bias=*/false);
    auto esam = recorded(strategy("esam", {{"beta", num(beta)}, {"gamma", num(1.0)}}, seed));
    std::vector<int> counts;
    for (int t = 0; t < 200; ++t) {
      rig.step->run(*esam, batch_x(t % 7), batch_y());
      // fc.weight and the class weights: their gradients are never zero.
      for (std::size_t i : {std::size_t{0}, esam->epsilon.size() - 1})
        counts.push_back(esam->epsilon[i].abs().max().item<double>() > 0 ? 1 : 0);
    }
    return counts;
  };
  const auto a = kept_counts(11), b = kept_counts(11);
  CATCH_CHECK(a == b);
  double kept = 0;
  for (int v : a) kept += v;
  CATCH_CHECK(kept / static_cast<double>(a.size()) == Approx(beta).margin(0.1));  // 400 draws
}

CATCH_TEST_CASE("ESAM with beta = gamma = 1 takes SAM's step") {
  Rig a(0.1, 0.9, 5e-4), b(0.1, 0.9, 5e-4);
  copy_state(*b.model.backbone, *a.model.backbone);
  copy_state(*b.model.head, *a.model.head);
  auto esam = strategy("esam", {{"rho", num(0.2)}, {"beta", num(1.0)}, {"gamma", num(1.0)}});
  auto sam = strategy("sam", {{"rho", num(0.2)}});
  for (int t = 0; t < 3; ++t) {
    StepStats se = a.step->run(*esam, batch_x(t), batch_y());
    StepStats ss = b.step->run(*sam, batch_x(t), batch_y());
    CATCH_REQUIRE((ss.grad_norm && ss.loss_perturbed));
    CATCH_CHECK(se.grad_norm == Approx(*ss.grad_norm).epsilon(1e-10));
    CATCH_CHECK(se.loss_perturbed == Approx(*ss.loss_perturbed).epsilon(1e-10));
  }
  CATCH_CHECK(max_diff(a.weights(), b.weights()) < 1e-11);
}

CATCH_TEST_CASE("ESAM with AACE's direction perturbs by -(rho/beta) m grad L_AACE") {
  const double rho = 0.4, beta = 0.5;
  const std::uint64_t seed = 3;
  Rig rig(0.1, 0.9, 5e-4, /*train_fc_bias=*/false);
  auto esam = recorded(strategy(
      "esam", {{"rho", num(rho)}, {"beta", num(beta)}, {"direction", text("aace")}}, seed));
  for (int t = 0; t < 3; ++t) {
    const at::Tensor x = batch_x(t), y = batch_y();
    const auto kept = esam_kept(seed, t, rig.mirror.w.size(), beta);
    const Tensors a = rig.mirror.aace_grad(x, y);
    rig.step->run(*esam, x, y);
    for (std::size_t i = 0; i < a.size(); ++i) {
      at::Tensor expected = kept[i] ? -(rho / beta) * a[i] : at::zeros_like(a[i]);
      CATCH_CHECK(max_abs_diff(esam->epsilon[i], expected) < 1e-12);
    }
    rig.mirror.set(clones(rig.weights()));  // follow the plugin's weights
  }
}

CATCH_TEST_CASE("GSAM steps on g_s - alpha g_perp, g_perp = g - (<g, g_s>/||g_s||^2) g_s") {
  const double rho = 0.2, alpha = 0.3, lr = 0.1, mu = 0.9, wd = 5e-4;
  for (const std::string direction : {"sam", "aace"}) {
    CATCH_CAPTURE(direction);
    Rig rig(lr, mu, wd);
    auto gsam = recorded(strategy(
        "gsam", {{"rho", num(rho)}, {"alpha", num(alpha)}, {"direction", text(direction)}}));
    auto& ref = rig.mirror;
    for (int t = 0; t < 3; ++t) {
      CATCH_CAPTURE(t);
      const at::Tensor x = batch_x(t), y = batch_y();
      const Tensors g = ref.grad(x, y);
      const Tensors eps = direction == "sam" ? scaled(rho / (norm_of(g) + 1e-12), g)
                                             : scaled(-rho, ref.aace_grad(x, y));
      const Tensors g_s = ref.grad_at(eps, x, y);
      const Tensors g_perp = axpy(-dot(g, g_s) / dot(g_s, g_s), g_s, g);
      CATCH_CHECK(std::abs(dot(g_perp, g_s)) < 1e-12 * norm_of(g_perp) * norm_of(g_s));
      StepStats s = rig.step->run(*gsam, x, y);
      CATCH_CHECK(s.second_pass);
      CATCH_CHECK(max_diff(gsam->epsilon, eps) < 1e-11);
      CATCH_CHECK(s.grad_norm == Approx(norm_of(g)).epsilon(1e-10));
      ref.sgd(axpy(-alpha, g_perp, g_s));
      CATCH_CHECK(max_diff(rig.weights(), ref.w) < 1e-10);
    }
  }
}

CATCH_TEST_CASE("GSAM with rho_schedule = lr scales rho between rho_min and rho with lr / lr_max") {
  const double rho = 0.2, rho_min = 0.05;
  Rig rig(0.1, 0.9, 5e-4);  // the run's peak lr: 0.1
  auto gsam = recorded(strategy(
      "gsam", {{"rho", num(rho)}, {"rho_min", num(rho_min)}, {"rho_schedule", text("lr")}}));
  for (double lr : {0.1, 0.025, 0.0}) {
    CATCH_CAPTURE(lr);
    set_learning_rate(*rig.optimizer, lr);
    StepStats s = rig.step->run(*gsam, batch_x(1), batch_y());
    const double expected = rho_min + (rho - rho_min) * lr / 0.1;
    CATCH_CHECK(s.epsilon_norm == Approx(expected).epsilon(1e-10));
    CATCH_CHECK(norm_of(gsam->epsilon) == Approx(expected).epsilon(1e-10));
  }
}

CATCH_TEST_CASE("the efficient strategies reject unknown or invalid options, naming the key") {
  CATCH_CHECK_THAT(config_error([] {
                     strategy("looksam", {{"kk", integer(2)}});
                   }),
                   Contains("unknown key 'kk'"));
  CATCH_CHECK_THAT(config_error([] {
                     strategy("looksam", {{"k", integer(0)}});
                   }),
                   Contains("k must be >= 1"));
  CATCH_CHECK_THAT(config_error([] {
                     strategy("looksam", {{"alpha", num(-0.1)}});
                   }),
                   Contains("alpha must be >= 0"));
  CATCH_CHECK_THAT(config_error([] {
                     strategy("looksam", {{"direction", text("asam")}});
                   }),
                   Contains("key 'direction'"));
  CATCH_CHECK_THAT(config_error([] {
                     strategy("ae-sam", {{"delta", num(1.0)}});
                   }),
                   Contains("delta must be in [0, 1)"));
  CATCH_CHECK_THAT(config_error([] {
                     strategy("ae-sam", {{"lambda1", num(NAN)}});
                   }),
                   Contains("lambda1 must be a finite number"));
  CATCH_CHECK_THAT(config_error([] {
                     strategy("ae-sam", {{"rho", num(-1.0)}});
                   }),
                   Contains("rho must be >= 0"));
  CATCH_CHECK_THAT(config_error([] {
                     strategy("esam", {{"beta", num(0.0)}});
                   }),
                   Contains("beta must be in (0, 1]"));
  CATCH_CHECK_THAT(config_error([] {
                     strategy("esam", {{"gamma", num(1.5)}});
                   }),
                   Contains("gamma must be in (0, 1]"));
  CATCH_CHECK_THAT(config_error([] {
                     strategy("gsam", {{"alpha", num(-1.0)}});
                   }),
                   Contains("alpha must be >= 0"));
  CATCH_CHECK_THAT(config_error([] {
                     strategy("gsam", {{"rho_min", num(0.01)}});
                   }),
                   Contains("rho_min applies only with rho_schedule"));
  CATCH_CHECK_THAT(
      config_error([] {
        strategy("gsam", {{"rho", num(0.1)}, {"rho_min", num(0.2)}, {"rho_schedule", text("lr")}});
      }),
      Contains("rho_min must be in [0, rho]"));
  CATCH_CHECK_THAT(config_error([] {
                     strategy("gsam", {{"rho_schedule", text("cosine")}});
                   }),
                   Contains("key 'rho_schedule'"));
  // The paper settings as defaults.
  for (const char* name : {"looksam", "ae-sam", "esam", "gsam"}) {
    CATCH_CAPTURE(name);
    CATCH_CHECK_NOTHROW(strategy(name));
    CATCH_CHECK(strategy(name)->two_pass());
  }
}
