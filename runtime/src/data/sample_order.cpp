#include "flatface/sample_order.hpp"

#include <utility>

namespace flatface {

namespace {
// Domain tags keep the shuffle and the flip streams independent of each other.
constexpr std::uint64_t kShuffleTag = 0x73687566666c6521ULL;  // "shuffle!"
constexpr std::uint64_t kFlipTag = 0x666c697073616d70ULL;     // "flipsamp"
}  // namespace

std::uint64_t mix64(std::uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::uint64_t SplitMix64::next() {
  state_ += 0x9e3779b97f4a7c15ULL;
  return mix64(state_);
}

std::uint64_t SplitMix64::below(std::uint64_t bound) {
  // 2^64 mod bound values at the bottom would be drawn once more often than the others.
  const std::uint64_t reject_below = (0 - bound) % bound;
  std::uint64_t r = next();
  while (r < reject_below) r = next();
  return r % bound;
}

std::uint64_t hash_words(std::uint64_t a, std::uint64_t b, std::uint64_t c) {
  std::uint64_t h = mix64(a + 0x9e3779b97f4a7c15ULL);
  h = mix64(h ^ (b + 0x9e3779b97f4a7c15ULL));
  return mix64(h ^ (c + 0x9e3779b97f4a7c15ULL));
}

std::vector<std::size_t> epoch_permutation(std::size_t n, std::uint64_t seed, std::int64_t epoch) {
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  SplitMix64 rng(hash_words(seed, static_cast<std::uint64_t>(epoch), kShuffleTag));
  for (std::size_t i = n; i > 1; --i) {  // Fisher-Yates: swap slot i-1 with a uniform j <= i-1
    auto j = static_cast<std::size_t>(rng.below(i));
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

bool flip_sample(std::uint64_t seed, std::int64_t epoch, std::size_t index) {
  std::uint64_t h = hash_words(seed ^ kFlipTag, static_cast<std::uint64_t>(epoch), index);
  return (h >> 63) != 0;
}

}  // namespace flatface
