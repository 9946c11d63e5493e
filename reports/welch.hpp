// Welch's unequal-variance t-test, two-sided.
#pragma once

#include <cmath>
#include <vector>

namespace flatface::reports {

struct WelchResult {
  double t = NAN;   // (mean_a - mean_b) / sqrt(s_a^2/n_a + s_b^2/n_b)
  double df = NAN;  // Welch-Satterthwaite degrees of freedom
  double p = NAN;   // two-sided p-value; NaN when undefined (n < 2 or both variances zero)
};

WelchResult welch_t_test(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace flatface::reports
