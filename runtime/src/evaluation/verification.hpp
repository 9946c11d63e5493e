// The 10-fold face-verification protocol of insightface's eval/verification.py (LFW style).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace flatface {

struct VerificationResult {
  double accuracy = 0;      // mean over folds of the held-out accuracy
  double accuracy_std = 0;  // population std over folds (numpy's np.std)
  double threshold = 0;     // mean over folds of the chosen squared-distance threshold
  double tar_at_far = 0;    // insightface `val`: mean over folds of TAR at the interpolated
                            // threshold where the training folds reach FAR = far_target
  double far = 0;           // mean over folds of the FAR that threshold gives on the held-out fold
  std::vector<double> fold_accuracies;
};

// embeddings: [2N,D] L2-normalised rows; pair i is rows 2i and 2i+1 (float32 or float64, any
// device). issame: N flags. Throws RuntimeError when the sizes disagree or N < folds.
VerificationResult evaluate_pairs(const at::Tensor& embeddings, const std::vector<bool>& issame,
                                  int folds = 10, double far_target = 1e-3);

// The squared L2 distance of each pair, ||e_2i - e_2i+1||^2, in float64.
std::vector<double> pair_distances(const at::Tensor& embeddings);

// sklearn KFold(n_splits = folds, shuffle = False): contiguous [begin, end) test ranges, the
// first n % folds of them one longer.
std::vector<std::pair<std::size_t, std::size_t>> kfold_ranges(std::size_t n, int folds);

}  // namespace flatface
