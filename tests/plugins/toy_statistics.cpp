// A plain step that reports one statistic as a computed NaN, for the trainer's check that a
// computed non-finite value fails the run naming the statistic: option `statistic` = "loss" |
// "grad_norm" (default "loss").
#include <cmath>
#include <memory>
#include <string>

#include "flatface/plugin.hpp"
#include "toy_step.hpp"

namespace {

class NanStatistic final : public flatface_test::ToyStep {
 public:
  explicit NanStatistic(bool grad_norm) : grad_norm_(grad_norm) {}
  flatface::StepStats step(flatface::StepContext& ctx) override {
    flatface::StepStats stats = ToyStep::step(ctx);
    if (grad_norm_)
      stats.grad_norm = std::nan("");
    else
      stats.loss = std::nan("");
    return stats;
  }

 private:
  bool grad_norm_;
};

std::unique_ptr<flatface::Perturbation> make(const flatface::PerturbationArgs& args) {
  return std::make_unique<NanStatistic>(
      args.options.get_choice("statistic", "loss", {"loss", "grad_norm"}) == "grad_norm");
}

}  // namespace

FLATFACE_PLUGIN(flatface::perturbation_entry(
    "test-nan-statistic", "plain SGD step that reports a NaN loss or grad norm (test plugin)",
    &make))
