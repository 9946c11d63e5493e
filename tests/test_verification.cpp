// The 10-fold verification protocol of insightface eval/verification.py (roc and val).
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "catch_compat.hpp"
#include "evaluation/verification.hpp"
#include "flatface/options.hpp"
#include "json_file.hpp"

using catch_compat::Approx;
using catch_compat::Contains;
using flatface::evaluate_pairs;
using flatface::kfold_ranges;
using flatface::VerificationResult;
using flatface::testing::load_json;
using flatface::testing::numbers_of;

namespace {

const std::string kReference =
    std::string(FLATFACE_SHARED_DIR) + "/vectors/verification_10fold.json";

// Pairs of 2-d unit vectors at the given squared distances: ||a - b||^2 = 2 - 2 cos(theta).
at::Tensor pairs_at_distances(const std::vector<double>& d) {
  std::vector<double> rows;
  for (double di : d) {
    const double c = 1.0 - di / 2.0, s = std::sqrt(std::max(0.0, 1.0 - c * c));
    rows.insert(rows.end(), {1.0, 0.0, c, s});
  }
  return at::tensor(rows, at::kDouble).reshape({static_cast<std::int64_t>(2 * d.size()), 2});
}

}  // namespace

CATCH_TEST_CASE("fold accuracies, their mean and population std equal insightface calculate_roc") {
  const auto ref = load_json(kReference);
  const auto e = numbers_of(ref.at("embeddings_normalised"));
  CATCH_REQUIRE(e.size() % 400 == 0);
  at::Tensor embeddings = at::tensor(e, at::kDouble).reshape({400, -1});
  const auto issame = ref.at("issame").get<std::vector<bool>>();
  CATCH_REQUIRE(issame.size() == 200);

  VerificationResult r = evaluate_pairs(embeddings, issame);
  const auto folds = numbers_of(ref.at("fold_accuracies"));
  CATCH_REQUIRE(r.fold_accuracies.size() == folds.size());
  for (std::size_t f = 0; f < folds.size(); ++f)
    CATCH_CHECK(r.fold_accuracies[f] == Approx(folds[f]).margin(1e-10));
  CATCH_CHECK(r.accuracy == Approx(ref.at("accuracy_mean").get<double>()).margin(1e-10));
  CATCH_CHECK(r.accuracy_std == Approx(ref.at("accuracy_std").get<double>()).margin(1e-10));
}

CATCH_TEST_CASE("float32 embeddings give the same fold accuracies on the reference vectors") {
  const auto ref = load_json(kReference);
  at::Tensor embeddings =
      at::tensor(numbers_of(ref.at("embeddings_normalised")), at::kDouble).reshape({400, -1});
  const auto issame = ref.at("issame").get<std::vector<bool>>();
  VerificationResult r = evaluate_pairs(embeddings.to(at::kFloat), issame);
  CATCH_CHECK(r.accuracy == Approx(ref.at("accuracy_mean").get<double>()).margin(1e-10));
}

CATCH_TEST_CASE(
    "mean threshold and TAR@FAR=1e-3 agree with a numpy transcription of verification.py") {
  // numpy for the folds and arg-maxima; scipy's interp1d(kind='slinear') is a degree-1 B-spline
  // whose interval is the last knot <= x (searchsorted right - 1), clipped to the last segment.
  const std::string script = R"PY(
import json, numpy as np
d = json.load(open(')PY" + kReference +
                             R"PY('))
e = np.array(d['embeddings_normalised']); same = np.array(d['issame'], dtype=bool)
dist = np.sum(np.square(e[0::2] - e[1::2]), 1)
n = len(same); sizes = [n // 10 + (1 if f < n % 10 else 0) for f in range(10)]
bounds = np.cumsum([0] + sizes)
th_acc = np.arange(0, 4, 0.01); th_val = np.arange(0, 4, 0.001)
best, vals, fars = [], [], []
for f in range(10):
    test = np.zeros(n, bool); test[bounds[f]:bounds[f+1]] = True; train = ~test
    acc = [np.mean(np.less(dist[train], t) == same[train]) for t in th_acc]
    best.append(th_acc[np.argmax(acc)])
    diff = dist[train][~same[train]]
    far = np.array([np.sum(np.less(diff, t)) / len(diff) for t in th_val])
    if far.max() >= 1e-3:
        j = min(max(np.searchsorted(far, 1e-3, side='right') - 1, 0), len(far) - 2)
        w = 1.0 / (far[j+1] - far[j])
        t = th_val[j] * (w * (far[j+1] - 1e-3)) + th_val[j+1] * (w * (1e-3 - far[j]))
    else:
        t = 0.0
    p = np.less(dist[test], t)
    vals.append(np.sum(p & same[test]) / np.sum(same[test]))
    fars.append(np.sum(p & ~same[test]) / np.sum(~same[test]))
print(repr(float(np.mean(best))), repr(float(np.mean(vals))), repr(float(np.mean(fars))))
)PY";
  const std::string path = "verification_reference_check.py";
  std::ofstream(path) << script;
  FILE* p = ::popen((std::string(FLATFACE_PYTHON) + " " + path).c_str(), "r");
  CATCH_REQUIRE(p != nullptr);
  double threshold = -1, tar = -1, far = -1;
  const int read = std::fscanf(p, "%lf %lf %lf", &threshold, &tar, &far);
  ::pclose(p);
  std::remove(path.c_str());
  CATCH_REQUIRE(read == 3);

  const auto ref = load_json(kReference);
  at::Tensor embeddings =
      at::tensor(numbers_of(ref.at("embeddings_normalised")), at::kDouble).reshape({400, -1});
  VerificationResult r = evaluate_pairs(embeddings, ref.at("issame").get<std::vector<bool>>());
  CATCH_CHECK(r.threshold == Approx(threshold).margin(1e-10));
  CATCH_CHECK(r.tar_at_far == Approx(tar).margin(1e-10));
  CATCH_CHECK(r.far == Approx(far).margin(1e-10));
}

CATCH_TEST_CASE("each fold picks the smallest threshold of maximal training accuracy") {
  // 20 pairs, 2 per fold. Same pairs at 0.5035, different pairs at 1.5035, except pair 0: "same"
  // but at 1.5035. Trained with pair 0, every t in (0.5035, 1.5035] misses only it; without it
  // (fold 0) the same range is perfect. The first maximum is t = 0.51 in every fold.
  std::vector<double> d;
  std::vector<bool> issame;
  for (int i = 0; i < 20; ++i) {
    const bool s = i % 2 == 0;
    issame.push_back(s);
    d.push_back(s && i != 0 ? 0.5035 : 1.5035);
  }
  VerificationResult r = evaluate_pairs(pairs_at_distances(d), issame);
  // fold 0 = pairs 0 and 1: pair 0 is rejected at 0.51, pair 1 (different, 1.5035) is right
  CATCH_CHECK(r.fold_accuracies[0] == Approx(0.5).margin(1e-15));
  for (int f = 1; f < 10; ++f) CATCH_CHECK(r.fold_accuracies[f] == Approx(1.0).margin(1e-15));
  CATCH_CHECK(r.accuracy == Approx(0.95).margin(1e-12));
  // population std: sqrt((9 * 0.05^2 + 0.45^2) / 10) = sqrt(0.0225) = 0.15
  CATCH_CHECK(r.accuracy_std == Approx(0.15).margin(1e-12));
  CATCH_CHECK(r.threshold == Approx(0.51).margin(1e-12));
}

CATCH_TEST_CASE("a two-fold case worked by hand: accuracy, thresholds, interpolated TAR and FAR") {
  // fold A (pairs 0-3): same 0.2035 0.6035, different 1.0035 1.2035
  // fold B (pairs 4-7): same 0.4035 1.1035, different 0.8035 1.4035
  std::vector<double> d{0.2035, 0.6035, 1.0035, 1.2035, 0.4035, 1.1035, 0.8035, 1.4035};
  std::vector<bool> issame{true, true, false, false, true, true, false, false};
  VerificationResult r = evaluate_pairs(pairs_at_distances(d), issame, 2, 0.25);
  // Test A, trained on B: correct(t) = 2 (t <= 0.40), 3 (0.41..0.80), 2, 3 (1.11..1.40), 2;
  // first maximum 0.41 -> A: 0.2035 accepted, 0.6035 rejected, both different rejected = 3/4.
  // Test B, trained on A: 2, 3 (0.21..0.60), 4 (0.61..1.00), 3, 2 -> 0.61
  // -> B: 0.4035 accepted, 1.1035 rejected, 0.8035 and 1.4035 rejected = 3/4.
  CATCH_CHECK(r.fold_accuracies == std::vector<double>{0.75, 0.75});
  CATCH_CHECK(r.accuracy_std == 0.0);
  CATCH_CHECK(r.threshold == Approx((0.41 + 0.61) / 2).margin(1e-12));
  // TAR at FAR 0.25. Trained on B (different 0.8035, 1.4035): FAR is 0 up to t = 0.803 and 0.5
  // from t = 0.804; interpolating to 0.25 gives t = 0.8035. A: both same accepted (TAR 1), no
  // different accepted (FAR 0). Trained on A: t = 1.0035. B: TAR 1/2, FAR 1/2 (0.8035 < 1.0035).
  CATCH_CHECK(r.tar_at_far == Approx(0.75).margin(1e-12));
  CATCH_CHECK(r.far == Approx(0.25).margin(1e-12));
}

CATCH_TEST_CASE("the TAR threshold is 0 when no training threshold reaches the FAR target") {
  // Different pairs antipodal (distance 4): no grid threshold below 4 accepts any of them, so
  // np.max(far_train) = 0 < 1e-3 and insightface falls back to threshold 0, which accepts nothing.
  std::vector<double> d;
  std::vector<bool> issame;
  for (int i = 0; i < 20; ++i) {
    issame.push_back(i % 2 == 0);
    d.push_back(i % 2 == 0 ? 0.1035 : 4.0);
  }
  VerificationResult r = evaluate_pairs(pairs_at_distances(d), issame);
  CATCH_CHECK(r.tar_at_far == 0.0);
  CATCH_CHECK(r.far == 0.0);
  CATCH_CHECK(r.accuracy == 1.0);
  CATCH_CHECK(r.threshold == Approx(0.11).margin(1e-12));
}

CATCH_TEST_CASE("folds are contiguous and the first n mod 10 of them hold one pair more") {
  using Ranges = std::vector<std::pair<std::size_t, std::size_t>>;
  CATCH_CHECK(kfold_ranges(20, 10) == Ranges{{0, 2},
                                             {2, 4},
                                             {4, 6},
                                             {6, 8},
                                             {8, 10},
                                             {10, 12},
                                             {12, 14},
                                             {14, 16},
                                             {16, 18},
                                             {18, 20}});
  CATCH_CHECK(kfold_ranges(23, 10) == Ranges{{0, 3},
                                             {3, 6},
                                             {6, 9},
                                             {9, 11},
                                             {11, 13},
                                             {13, 15},
                                             {15, 17},
                                             {17, 19},
                                             {19, 21},
                                             {21, 23}});
  CATCH_CHECK(kfold_ranges(10, 10).back() == std::pair<std::size_t, std::size_t>{9, 10});

  // 13 pairs: folds of 2, 2, 2, 1, ... A misfit in pair 2 lands in fold 1 (pairs 2 and 3).
  std::vector<double> d;
  std::vector<bool> issame;
  for (int i = 0; i < 13; ++i) {
    const bool s = i % 2 == 0;
    issame.push_back(s);
    d.push_back(s && i != 2 ? 0.3035 : 1.7035);
  }
  VerificationResult r = evaluate_pairs(pairs_at_distances(d), issame);
  std::vector<double> expected(10, 1.0);
  expected[1] = 0.5;
  CATCH_CHECK(r.fold_accuracies == expected);
}

CATCH_TEST_CASE("mismatched sizes and too few pairs are errors that say so") {
  at::Tensor e = pairs_at_distances(std::vector<double>(12, 1.0));
  CATCH_CHECK_THROWS_WITH(evaluate_pairs(e, std::vector<bool>(11, true)),
                          Contains("12 embedding pairs but 11 issame flags"));
  at::Tensor small = pairs_at_distances(std::vector<double>(9, 1.0));
  CATCH_CHECK_THROWS_AS(evaluate_pairs(small, std::vector<bool>(9, true)), flatface::RuntimeError);
  CATCH_CHECK_THROWS_AS(evaluate_pairs(at::zeros({5, 2}), std::vector<bool>(2, true)),
                        flatface::RuntimeError);
}
