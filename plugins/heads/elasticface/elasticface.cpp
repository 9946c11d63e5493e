// ElasticFace (Boutros et al., "ElasticFace: Elastic Margin Loss for Deep Face Recognition",
// CVPRW 2022, Sec. 3; github.com/fdbtrs/ElasticFace utils/losses.py, config/config.py):
//   arc: target logit s cos(θ_y + m_i),  cos: target logit s (cos θ_y − m_i),  m_i ~ N(m, σ),
// a fresh margin per sample and step. As in the authors' code, cos(θ + m) has no fallback where
// θ + m > π. plus (ElasticFace+): the step's draws sorted and paired with the samples by their
// target cosines, the largest cosine taking the smallest margin. (The authors' code indexes the
// sorted margins by the cosines' argsort, margin[argsort(cos)], which pairs them so only when that
// permutation is its own inverse; we pair by rank, as sorting both lists intends.)
// The draws are a pure function of (run seed, step, row of the global batch): SplitMix64 and
// Box-Muller, so runs repeat, resume exactly, and --nproc 2 draws what one process draws; both
// passes of a two-pass step see the same margins.
#include <ATen/ops/sort.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "flatface/collectives.hpp"
#include "flatface/cosine_head.hpp"
#include "flatface/plugin.hpp"
#include "flatface/sample_order.hpp"

namespace flatface::heads {
namespace {

constexpr std::uint64_t kMarginTag = 0x656c617374696346ULL;  // "elasticF"

// z ~ N(0, 1) for (seed, step, row): Box-Muller on two SplitMix64 uniforms, u1 in (0, 1].
double standard_normal(std::uint64_t seed, std::int64_t step, std::int64_t row) {
  SplitMix64 rng(hash_words(seed ^ kMarginTag, static_cast<std::uint64_t>(step),
                            static_cast<std::uint64_t>(row)));
  const double u1 = static_cast<double>((rng.next() >> 11) + 1) * 0x1.0p-53;
  const double u2 = static_cast<double>(rng.next() >> 11) * 0x1.0p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

class ElasticFace final : public CosineHead {
 public:
  explicit ElasticFace(const HeadArgs& args)
      : CosineHead(args, "elasticface"),
        arc_(args.options.get_choice("variant", "arc", {"arc", "cos"}) == "arc"),
        plus_(args.options.get_bool("plus", false)),
        s_(positive_option(args.options, "s", 64.0)),
        m_(nonnegative_option(args.options, "m", arc_ ? 0.5 : 0.35)),
        // config/config.py: σ 0.05 (arc, cos), 0.0175 (arc+), 0.02 (cos+).
        sigma_(nonnegative_option(args.options, "sigma", plus_ ? (arc_ ? 0.0175 : 0.02) : 0.05)),
        seed_(args.seed),
        ranks_(*args.collectives) {
    if (arc_ && !(m_ < M_PI))
      throw ConfigError(args.options.pos_of("m").str() +
                        ": m must be < pi for head 'elasticface' (variant \"arc\")");
    // The step whose margins logits() draws, so that a head restored from a checkpoint draws as
    // the step it last trained.
    step_buffer_ = register_buffer("step", at::zeros({1}, at::kLong));
  }

  void begin_step(const HeadStep& s) override {
    step_ = s.step;
    step_buffer_.fill_(s.step);
    first_row_ = s.first_row;
    global_rows_ = s.global_rows;
  }

  at::Tensor logits(const at::Tensor& embeddings, const at::Tensor& labels) override {
    at::Tensor cos = cosine(embeddings);
    at::Tensor c = target_column(cos, labels);
    at::Tensor m = margins(c.detach());  // [N,1], constants
    at::Tensor target;
    if (arc_) {
      target = cos_plus_margin(c, m);  // cos(θ + m_i): ElasticFace-Arc
    } else {
      target = c - m;  // ElasticFace-Cos
    }
    return s_ * with_target(cos, labels, target);
  }

 private:
  // m_i = m + σ z_i for this rank's rows of the global batch; with plus, sorted against the
  // target cosines of the whole global batch (gathered through the collectives).
  at::Tensor margins(const at::Tensor& c) {
    const std::int64_t n = c.size(0);
    // One process draws for the rows it is given (ESAM's subset included); ranks, for their rows
    // of the global batch.
    const std::int64_t rows = ranks_.world_size() == 1 ? n : std::max(global_rows_, first_row_ + n);
    const std::int64_t first = ranks_.world_size() == 1 ? 0 : first_row_;
    const std::int64_t step = step_ ? *step_ : step_buffer_.item<std::int64_t>();
    std::vector<double> drawn(static_cast<std::size_t>(plus_ ? rows : n));
    for (std::size_t i = 0; i < drawn.size(); ++i) {
      const auto row = static_cast<std::int64_t>(i) + (plus_ ? 0 : first);
      drawn[i] = m_ + sigma_ * standard_normal(seed_, step, row);
    }
    at::Tensor m = at::tensor(drawn, c.options().dtype(at::kDouble)).to(c.scalar_type());
    if (plus_) {
      at::Tensor all = at::zeros({rows}, c.options());
      all.narrow(0, first, n).copy_(c.view({-1}));
      ranks_.all_reduce_sum({all});
      at::Tensor order = std::get<1>(at::sort(all, /*stable=*/true, 0, /*descending=*/true));
      at::Tensor ascending = std::get<0>(at::sort(m, /*stable=*/true, 0, /*descending=*/false));
      m = at::zeros_like(m).scatter_(0, order, ascending).narrow(0, first, n);
    }
    return m.view({-1, 1});
  }

  bool arc_, plus_;
  double s_, m_, sigma_;
  std::uint64_t seed_;
  Collectives& ranks_;
  std::optional<std::int64_t> step_;  // set by begin_step; otherwise the buffer's
  std::int64_t first_row_ = 0, global_rows_ = 0;
  at::Tensor step_buffer_;
};

std::shared_ptr<MarginHead> make_elasticface(const HeadArgs& args) {
  return std::make_shared<ElasticFace>(args);
}

}  // namespace
}  // namespace flatface::heads

FLATFACE_PLUGIN(flatface::head_entry(
    "elasticface", "margins drawn per sample from N(m, sigma), arc or cos (ElasticFace, +: sorted)",
    &flatface::heads::make_elasticface))
