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
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/topk.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "aace_loss.hpp"
#include "flatface/plugin.hpp"
#include "step_ops.hpp"

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
    const bool any_kept = std::any_of(kept.begin(), kept.end(), [](bool k) { return k; });

    // First pass at w, with gradients for the kept tensors only.
    ctx.zero_grad();
    at::Tensor loss, perturbation_loss, per_sample_before, g_norm;
    std::vector<at::Tensor> eps(w.size());  // undefined where left out
    {
      FrozenParameters frozen(w, kept);
      at::Tensor z = ctx.forward(Pass::first);
      {
        at::NoGradGuard no_grad;
        if (gamma_ < 1) per_sample_before = per_sample_loss(z, ctx.labels());
      }
      if (any_kept && direction_ == Direction::sam) {
        loss = margin_loss(z, ctx.labels());
        z = at::Tensor();
        loss.backward();
        loss = loss.detach();
        perturbation_loss = loss;
        for (std::size_t i = 0; i < w.size(); ++i)
          if (kept[i]) eps[i] = w[i].grad().defined() ? w[i].grad() : at::zeros_like(w[i]);
        g_norm = global_norm(defined(eps));
        at::NoGradGuard no_grad;
        at::Tensor scale = rho_ / beta_ / (g_norm + 1e-12);  // ε = (ρ/β) m ⊙ g/‖m ⊙ g‖
        for (auto& e : eps)
          if (e.defined()) e.mul_(scale);
      } else {
        {
          at::NoGradGuard no_grad;
          loss = margin_loss(z, ctx.labels());
        }
        perturbation_loss = loss;
        if (any_kept) {
          perturbation_loss = aace_epsilon(ctx, z, rho_ / beta_);  // −(ρ/β) m ⊙ ∇L_AACE
          for (std::size_t i = 0; i < w.size(); ++i)
            if (kept[i]) eps[i] = w[i].grad().defined() ? w[i].grad() : at::zeros_like(w[i]);
        }
      }
    }
    at::Tensor epsilon_norm =
        any_kept ? global_norm(defined(eps)) : at::zeros({}, w.front().options());

    // To w + ε: w_saved ← w, and the kept tensors move.
    {
      at::NoGradGuard no_grad;
      auto& saved = ctx.saved_weights();
      for (std::size_t i = 0; i < w.size(); ++i) {
        saved[i].copy_(w[i]);
        if (eps[i].defined()) w[i].add_(eps[i]);
      }
    }
    eps.clear();
    ctx.zero_grad();

    at::Tensor loss_perturbed;
    if (gamma_ < 1) {
      at::Tensor rise;
      {
        at::NoGradGuard no_grad;
        at::Tensor after = per_sample_loss(ctx.forward(Pass::second), ctx.labels());
        loss_perturbed = after.mean();
        rise = after - per_sample_before;
      }
      const std::int64_t n = rise.size(0);
      const auto selected = std::max<std::int64_t>(
          1, static_cast<std::int64_t>(std::floor(gamma_ * static_cast<double>(n))));
      at::Tensor rows = std::get<0>(at::sort(std::get<1>(at::topk(rise, selected))));
      ctx.select_samples(rows);
    }
    at::Tensor loss_selected = margin_loss(ctx.forward(Pass::second), ctx.labels());
    loss_selected.backward();
    if (!loss_perturbed.defined()) loss_perturbed = loss_selected.detach();
    ctx.select_samples(at::Tensor());

    restore_weights(ctx);  // back to w exactly, then SGD on ∇L_B+(w + ε)
    ctx.optimizer_step();

    std::vector<at::Tensor> scalars{loss, perturbation_loss, loss_perturbed, epsilon_norm};
    if (g_norm.defined()) scalars.push_back(g_norm);
    auto v = to_host(scalars);
    StepStats stats;
    stats.loss = v[0];
    stats.perturbation_loss = v[1];
    stats.loss_perturbed = v[2];
    stats.epsilon_norm = v[3];
    // ‖∇L_margin(w)‖ over all parameters is known only when no tensor was left out.
    stats.grad_norm = g_norm.defined() && all_kept ? v[4] : kNaN;
    stats.second_pass = true;
    return stats;
  }
  bool two_pass() const override { return true; }

 private:
  std::vector<bool> draw_kept(std::int64_t step, std::size_t n) const {
    std::vector<bool> kept(n);
    for (std::size_t i = 0; i < n; ++i) kept[i] = beta_ >= 1 || uniform(seed_, step, i) < beta_;
    return kept;
  }
  static at::Tensor per_sample_loss(const at::Tensor& logits, const at::Tensor& labels) {
    return at::cross_entropy_loss(logits, labels, {}, at::Reduction::None);
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
