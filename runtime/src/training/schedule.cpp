#include "training/schedule.hpp"

#include <cmath>

namespace flatface {

double learning_rate(const TrainSettings& t, std::int64_t epoch, std::int64_t step,
                     std::int64_t steps_per_epoch) {
  double lr = t.lr;
  for (auto m : t.milestones)
    if (epoch >= m) lr *= t.gamma;
  double progress = static_cast<double>(epoch) +
                    static_cast<double>(step) / static_cast<double>(std::max<std::int64_t>(1, steps_per_epoch));
  if (t.warmup_epochs > 0 && progress < t.warmup_epochs) {
    // Linear warm-up per step, reaching the scheduled rate at the end of the warm-up.
    double done = (progress * steps_per_epoch + 1) / (t.warmup_epochs * steps_per_epoch);
    lr *= std::min(1.0, done);
  }
  return lr;
}

}  // namespace flatface
