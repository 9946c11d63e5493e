// evaluation/: a backbone judged on verification pairs. Embeddings (this file), the 10-fold
// protocol of insightface (verification.hpp) and embeddings written to HDF5 (embedding_file.hpp).
// Uses data/ for the pairs; knows nothing of training or grids.
//
// A backbone on a verification set: flip-augmented embeddings of every pair, then the 10-fold
// protocol (verification.hpp).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>

#include "flatface/backbone.hpp"
#include "flatface/dataset.hpp"
#include "evaluation/verification.hpp"

namespace flatface {

// [2N,D] float32 on the CPU: row i = normalise(f(x_i) + f(flip(x_i))), f the backbone in eval
// mode without gradients (its train/eval mode is restored afterwards). Images are decoded by
// set.image(i) on at::get_num_threads() threads, overlapped with the forward passes.
at::Tensor embed_pairs(Backbone& backbone, const VerificationSet& set, std::int64_t batch_size,
                       const c10::Device& device);

// embed_pairs, and the magnitude ‖f(x_i)‖ [2N] float32 of each image as given (not flipped, not
// normalised): the quality score of MagFace (Meng et al. 2021), a plain feature norm for any head.
struct PairEmbeddings {
  at::Tensor embeddings;  // [2N,D] float32, as embed_pairs
  at::Tensor magnitudes;  // [2N] float32
};
PairEmbeddings embed_pairs_with_magnitudes(Backbone& backbone, const VerificationSet& set,
                                           std::int64_t batch_size, const c10::Device& device);

// embed_pairs (kept in float64 until the distances, as insightface does) + evaluate_pairs.
VerificationResult evaluate(Backbone& backbone, const VerificationSet& set, std::int64_t batch_size,
                            const c10::Device& device);

}  // namespace flatface
