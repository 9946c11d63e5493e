#include "evaluation/verification.hpp"

#include <ATen/ops/to.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "flatface/options.hpp"

namespace flatface {

namespace {

// Squared distances of the pairs in one subset, split by ground truth and sorted, so that
// "how many pairs have d < t" is one binary search. NaN distances are never below a threshold.
struct SortedPairs {
  std::vector<double> same, diff;  // finite distances only
  std::size_t n_same = 0, n_diff = 0;

  void add(double d, bool is_same) {
    (is_same ? n_same : n_diff) += 1;
    if (!std::isnan(d)) (is_same ? same : diff).push_back(d);
  }
  void sort() {
    std::sort(same.begin(), same.end());
    std::sort(diff.begin(), diff.end());
  }
  static std::size_t count_below(const std::vector<double>& v, double t) {
    if (std::isnan(t)) return 0;
    return static_cast<std::size_t>(std::lower_bound(v.begin(), v.end(), t) - v.begin());
  }
  // predict "same" iff d < t (np.less)
  std::size_t true_accepts(double t) const { return count_below(same, t); }
  std::size_t false_accepts(double t) const { return count_below(diff, t); }
  // tp + tn: same pairs below t plus different pairs at or above it
  std::size_t correct(double t) const { return true_accepts(t) + (n_diff - false_accepts(t)); }
  std::size_t size() const { return n_same + n_diff; }
};

// np.arange(0, 4, step) fills start + i * step.
std::vector<double> threshold_grid(double step, std::size_t count) {
  std::vector<double> t(count);
  for (std::size_t i = 0; i < count; ++i) t[i] = static_cast<double>(i) * step;
  return t;
}

double ratio(std::size_t a, std::size_t b) {
  // calculate_accuracy's convention for an empty class (tpr/fpr = 0)
  return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b);
}

// calculate_val's threshold: scipy interp1d(far_train, thresholds, kind='slinear')(far_target),
// a degree-1 B-spline on the knots far_train (non-decreasing, with repeats). The interval is
// the last j < n-1 with far[j] <= target, as scipy's find_interval; at a repeated end value this
// gives 0/0 = NaN exactly as scipy does (and a NaN threshold accepts nothing).
double interpolate_threshold(const std::vector<double>& far, const std::vector<double>& th,
                             double target) {
  std::size_t j = 0;
  while (j + 2 < far.size() && far[j + 1] <= target) ++j;
  const double w = 1.0 / (far[j + 1] - far[j]);
  const double h0 = w * (far[j + 1] - target), h1 = w * (target - far[j]);
  return th[j] * h0 + th[j + 1] * h1;
}

}  // namespace

std::vector<double> pair_distances(const at::Tensor& embeddings) {
  if (embeddings.dim() != 2 || embeddings.size(0) % 2 != 0)
    throw RuntimeError("verification: embeddings must be [2N,D], got " +
                       std::to_string(embeddings.dim()) + "-d tensor with " +
                       std::to_string(embeddings.dim() > 0 ? embeddings.size(0) : 0) + " rows");
  at::Tensor e = embeddings.to(at::kCPU, at::kDouble).contiguous();
  const std::int64_t pairs = e.size(0) / 2, dim = e.size(1);
  const double* p = e.data_ptr<double>();
  std::vector<double> dist(static_cast<std::size_t>(pairs));
  for (std::int64_t i = 0; i < pairs; ++i) {
    const double* a = p + (2 * i) * dim;
    const double* b = p + (2 * i + 1) * dim;
    double sum = 0;
    for (std::int64_t k = 0; k < dim; ++k) sum += (a[k] - b[k]) * (a[k] - b[k]);  // ||a - b||^2
    dist[static_cast<std::size_t>(i)] = sum;
  }
  return dist;
}

std::vector<std::pair<std::size_t, std::size_t>> kfold_ranges(std::size_t n, int folds) {
  if (folds < 2 || n < static_cast<std::size_t>(folds))
    throw RuntimeError("verification: " + std::to_string(n) + " pairs cannot be split into " +
                       std::to_string(folds) + " folds");
  const auto k = static_cast<std::size_t>(folds);
  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  std::size_t begin = 0;
  for (std::size_t f = 0; f < k; ++f) {
    const std::size_t size = n / k + (f < n % k ? 1 : 0);
    ranges.emplace_back(begin, begin + size);
    begin += size;
  }
  return ranges;
}

VerificationResult evaluate_pairs(const at::Tensor& embeddings, const std::vector<bool>& issame,
                                  int folds, double far_target) {
  const std::vector<double> dist = pair_distances(embeddings);
  if (dist.size() != issame.size())
    throw RuntimeError("verification: " + std::to_string(dist.size()) + " embedding pairs but " +
                       std::to_string(issame.size()) + " issame flags");
  const auto accuracy_thresholds = threshold_grid(0.01, 400);  // calculate_roc
  const auto val_thresholds = threshold_grid(0.001, 4000);     // calculate_val

  VerificationResult r;
  std::vector<double> chosen_thresholds, tars, fars;
  for (const auto& [begin, end] : kfold_ranges(dist.size(), folds)) {
    SortedPairs train, test;
    for (std::size_t i = 0; i < dist.size(); ++i)
      (i >= begin && i < end ? test : train).add(dist[i], issame[i]);
    train.sort();
    test.sort();

    // Accuracy: the threshold with the most correct train pairs (first maximum, np.argmax).
    std::size_t best = 0;
    for (std::size_t t = 1; t < accuracy_thresholds.size(); ++t)
      if (train.correct(accuracy_thresholds[t]) > train.correct(accuracy_thresholds[best]))
        best = t;
    const double chosen = accuracy_thresholds[best];
    r.fold_accuracies.push_back(ratio(test.correct(chosen), test.size()));
    chosen_thresholds.push_back(chosen);

    // TAR@FAR: the threshold whose train FAR is far_target, interpolated between grid points.
    std::vector<double> far_train(val_thresholds.size());
    for (std::size_t t = 0; t < val_thresholds.size(); ++t)
      far_train[t] = ratio(train.false_accepts(val_thresholds[t]), train.n_diff);
    const double threshold = far_train.back() >= far_target  // np.max: far grows with t
                                 ? interpolate_threshold(far_train, val_thresholds, far_target)
                                 : 0.0;
    tars.push_back(ratio(test.true_accepts(threshold), test.n_same));
    fars.push_back(ratio(test.false_accepts(threshold), test.n_diff));
  }

  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return s / static_cast<double>(v.size());
  };
  r.accuracy = mean(r.fold_accuracies);
  double var = 0;
  for (double a : r.fold_accuracies) var += (a - r.accuracy) * (a - r.accuracy);
  r.accuracy_std = std::sqrt(var / static_cast<double>(r.fold_accuracies.size()));  // np.std
  r.threshold = mean(chosen_thresholds);
  r.tar_at_far = mean(tars);
  r.far = mean(fars);
  return r;
}

}  // namespace flatface
