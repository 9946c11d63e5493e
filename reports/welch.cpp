#include "welch.hpp"

#include <boost/math/distributions/students_t.hpp>

#include "aggregate.hpp"

namespace flatface::reports {

WelchResult welch_t_test(const std::vector<double>& a, const std::vector<double>& b) {
  WelchResult r;
  MeanStd sa = mean_std(a), sb = mean_std(b);
  if (sa.n < 2 || sb.n < 2) return r;
  const double va = sa.std * sa.std / static_cast<double>(sa.n);  // s_a^2 / n_a
  const double vb = sb.std * sb.std / static_cast<double>(sb.n);
  if (va + vb == 0) return r;
  r.t = (sa.mean - sb.mean) / std::sqrt(va + vb);
  // Welch-Satterthwaite: (va + vb)^2 / (va^2/(n_a - 1) + vb^2/(n_b - 1))
  r.df = (va + vb) * (va + vb) /
         (va * va / static_cast<double>(sa.n - 1) + vb * vb / static_cast<double>(sb.n - 1));
  boost::math::students_t dist(r.df);
  r.p = 2 * boost::math::cdf(boost::math::complement(dist, std::fabs(r.t)));
  return r;
}

}  // namespace flatface::reports
