// The order and augmentation of training samples: a pure function of (seed, epoch, index), the same
// on every platform and independent of torch's generators and of thread scheduling.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace flatface {

// SplitMix64 (Steele, Lea & Flood 2014): a tiny, well-mixed 64-bit generator.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t state) : state_(state) {}
  std::uint64_t next();
  // Uniform in [0, bound), without modulo bias (rejection of the short last interval).
  std::uint64_t below(std::uint64_t bound);

 private:
  std::uint64_t state_;
};

// The SplitMix64 output function applied to one value.
std::uint64_t mix64(std::uint64_t x);
// A hash of several words, order sensitive.
std::uint64_t hash_words(std::uint64_t a, std::uint64_t b, std::uint64_t c = 0);

// A permutation of 0..n-1 drawn by Fisher-Yates from SplitMix64(hash(seed, epoch)).
std::vector<std::size_t> epoch_permutation(std::size_t n, std::uint64_t seed, std::int64_t epoch);

// Whether sample `index` is mirrored in `epoch`: one fair coin per (seed, epoch, index).
bool flip_sample(std::uint64_t seed, std::int64_t epoch, std::size_t index);

}  // namespace flatface
