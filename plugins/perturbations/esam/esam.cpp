// ESAM (Du et al., "Efficient Sharpness-aware Minimization for Improved Training of Neural
// Networks", ICLR 2022, Algorithm 1), two savings on SAM's step:
//   Stochastic weight perturbation: each parameter tensor is perturbed with probability β,
//     m_j ~ Bernoulli(β) (per tensor, as in the authors' code; the paper writes it per weight),
//     ε = (ρ/β) m ⊙ g/‖m ⊙ g‖ (or AACE's −(ρ/β) m ⊙ ∇L_AACE). The first backward pass computes no
//     gradient for a tensor left out, which is what saves time. The draws are reproducible:
//     SplitMix64 of (the run's seed, the step, the tensor's index).
//   Sharpness-sensitive data selection: the per-sample loss rise ℓ_i(w + ε) − ℓ_i(w) is measured
//     on the whole batch without gradients, and the second pass (forward and backward at w + ε)
//     takes only the ⌊γN⌋ samples (at least one) where it is largest: w ← SGD(w, ∇L_B+(w + ε)).
//     γ = 1 uses the whole batch and skips the measurement.
//   A head's own loss term (MagFace's regulariser) is part of ℓ_i: ℓ_i = CE_i + r_i, so the
//     samples are ranked by the rise of the loss that is descended.
#include <ATen/ops/sort.h>
#include <ATen/ops/topk.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "flatface/aace_loss.hpp"
#include "flatface/plugin.hpp"
#include "flatface/step_ops.hpp"

namespace flatface::perturbations {
namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A uniform number in [0, 1) for (seed, step, tensor).
double uniform(std::uint64_t seed, std::int64_t step, std::size_t tensor) {
  const std::uint64_t h =
      splitmix64(splitmix64(splitmix64(seed) ^ static_cast<std::uint64_t>(step)) ^
                 static_cast<std::uint64_t>(tensor));
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

// Takes the left-out parameters out of autograd for one scope, and puts them back even when the
// scope ends by an exception.
class FrozenParameters {
 public:
  FrozenParameters(const std::vector<at::Tensor>& w, const std::vector<bool>& kept) : w_(w) {
    for (std::size_t i = 0; i < w_.size(); ++i) {
      if (!kept[i]) {
        w_[i].requires_grad_(false);
        frozen_.push_back(i);
      }
    }
  }
  ~FrozenParameters() {
    for (std::size_t i : frozen_) w_[i].requires_grad_(true);
  }
  FrozenParameters(const FrozenParameters&) = delete;
  FrozenParameters& operator=(const FrozenParameters&) = delete;

 private:
  const std::vector<at::Tensor>& w_;
  std::vector<std::size_t> frozen_;
};

class Esam final : public Perturbation {
 public:
  Esam(double rho, double beta, double gamma, Direction direction, std::uint64_t seed)
      : rho_(rho), beta_(beta), gamma_(gamma), direction_(direction), seed_(seed) {}

  StepStats step(StepContext& ctx) override {
    const auto& w = ctx.parameters();
    const std::vector<bool> kept = draw_kept(ctx.progress().step, w.size());
    const bool all_kept = std::all_of(kept.begin(), kept.end(), [](bool k) { return k; });

    FirstPass first = first_pass(ctx, kept);
    at::Tensor epsilon_norm =
        first.eps.empty() ? at::zeros({}, w.front().options()) : global_norm(defined(first.eps));
    // To w + ε: w_saved ← w, and the kept tensors move.
    {
      at::NoGradGuard no_grad;
      auto& saved = ctx.saved_weights();
      for (std::size_t i = 0; i < w.size(); ++i) {
        saved[i].copy_(w[i]);
        if (!first.eps.empty() && first.eps[i].defined()) w[i].add_(first.eps[i]);
      }
    }
    first.eps.clear();
    ctx.zero_grad();

    at::Tensor loss_perturbed;
    if (gamma_ < 1) loss_perturbed = select_sharpest(ctx, first.per_sample);
    at::Tensor loss_selected = margin_loss(ctx, ctx.forward(Pass::second));
    loss_selected.backward();
    if (!loss_perturbed.defined()) loss_perturbed = loss_selected.detach();
    ctx.select_samples(at::Tensor());
    restore_weights(ctx);  // back to w exactly, then SGD on ∇L_B+(w + ε)
    ctx.optimizer_step();

    StepReport report(first.loss);
    // ‖∇L_margin(w)‖ over all parameters is known only when no tensor was left out.
    if (first.g_norm.defined() && all_kept) report.grad_norm(first.g_norm);
    return report.second_pass(first.perturbation_loss, {loss_perturbed, epsilon_norm}).to_host();
  }
  bool two_pass() const override { return true; }

 private:
  struct FirstPass {
    at::Tensor loss, perturbation_loss;
    at::Tensor per_sample;        // ℓ_i(w), for the selection (γ < 1)
    at::Tensor g_norm;            // ‖m ⊙ g‖ (SAM's direction)
    std::vector<at::Tensor> eps;  // ε per tensor, undefined where left out; empty: none drawn
  };

  // The pass at w, with gradients for the kept tensors only, and ε from them.
  FirstPass first_pass(StepContext& ctx, const std::vector<bool>& kept) const {
    const auto& w = ctx.parameters();
    const bool any_kept = std::any_of(kept.begin(), kept.end(), [](bool k) { return k; });
    auto kept_gradients = [&] {
      std::vector<at::Tensor> g(w.size());
      for (std::size_t i = 0; i < w.size(); ++i)
        if (kept[i]) g[i] = w[i].grad().defined() ? w[i].grad() : at::zeros_like(w[i]);
      return g;
    };
    FirstPass f;
    ctx.zero_grad();
    FrozenParameters frozen(w, kept);
    at::Tensor z = ctx.forward(Pass::first);
    if (gamma_ < 1) {
      at::NoGradGuard no_grad;
      f.per_sample = per_sample_margin_loss(ctx, z);
    }
    if (any_kept && direction_ == Direction::sam) {
      f.loss = margin_loss(ctx, z);
      z = at::Tensor();
      f.loss.backward();
      f.loss = f.loss.detach();
      f.perturbation_loss = f.loss;
      f.eps = kept_gradients();
      f.g_norm = global_norm(defined(f.eps));
      at::NoGradGuard no_grad;
      at::Tensor scale = rho_ / beta_ / (f.g_norm + 1e-12);  // ε = (ρ/β) m ⊙ g/‖m ⊙ g‖
      for (auto& e : f.eps)
        if (e.defined()) e.mul_(scale);
      return f;
    }
    {
      at::NoGradGuard no_grad;
      f.loss = margin_loss(ctx, z);
    }
    f.perturbation_loss = f.loss;
    if (any_kept) {  // AACE's direction: −(ρ/β) m ⊙ ∇L_AACE
      f.perturbation_loss = aace_epsilon(ctx, z, rho_ / beta_);
      f.eps = kept_gradients();
    }
    return f;
  }

  // The rise ℓ_i(w + ε) − ℓ_i(w) of every sample, without gradients; narrows the batch to the
  // ⌊γN⌋ (at least one) largest. Returns L_margin(w + ε) over the whole batch.
  at::Tensor select_sharpest(StepContext& ctx, const at::Tensor& before) const {
    at::Tensor rise, loss;
    {
      at::NoGradGuard no_grad;
      at::Tensor after = per_sample_margin_loss(ctx, ctx.forward(Pass::second));
      loss = after.mean();
      rise = after - before;
    }
    const std::int64_t n = rise.size(0);
    const auto selected = std::max<std::int64_t>(
        1, static_cast<std::int64_t>(std::floor(gamma_ * static_cast<double>(n))));
    ctx.select_samples(std::get<0>(at::sort(std::get<1>(at::topk(rise, selected)))));
    return loss;
  }

  std::vector<bool> draw_kept(std::int64_t step, std::size_t n) const {
    std::vector<bool> kept(n);
    for (std::size_t i = 0; i < n; ++i) kept[i] = beta_ >= 1 || uniform(seed_, step, i) < beta_;
    return kept;
  }
  static std::vector<at::Tensor> defined(const std::vector<at::Tensor>& ts) {
    std::vector<at::Tensor> out;
    for (const auto& t : ts)
      if (t.defined()) out.push_back(t);
    return out;
  }

  double rho_, beta_, gamma_;
  Direction direction_;
  std::uint64_t seed_;
};

std::unique_ptr<Perturbation> make_esam(const PerturbationArgs& args) {
  const Options& o = args.options;
  const double rho = rho_option(o, 0.05);
  const double beta = o.get_double("beta", 0.6);
  if (!(beta > 0 && beta <= 1)) {
    throw ConfigError(o.pos_of("beta").str() + ": beta must be in (0, 1] for " + o.what() +
                      " (got " + std::to_string(beta) + ")");
  }
  const double gamma = o.get_double("gamma", 0.5);
  if (!(gamma > 0 && gamma <= 1)) {
    throw ConfigError(o.pos_of("gamma").str() + ": gamma must be in (0, 1] for " + o.what() +
                      " (got " + std::to_string(gamma) + ")");
  }
  return std::make_unique<Esam>(rho, beta, gamma, direction_option(o), args.seed);
}

}  // namespace
}  // namespace flatface::perturbations

FLATFACE_PLUGIN(flatface::perturbation_entry(
    "esam",
    "ESAM: a random subset (beta) of the weights perturbed; the second pass on the fraction gamma "
    "of samples whose loss rises most",
    &flatface::perturbations::make_esam))
