#include "flatface/decoded_pairs.hpp"

#include <algorithm>
#include <thread>

#include "data/parallel_for.hpp"

namespace flatface::datasets {

std::vector<Image> decode_all(std::size_t count, const std::function<Image(std::size_t)>& load) {
  std::vector<Image> out(count);
  const unsigned threads = std::max(1u, std::min(std::thread::hardware_concurrency(), 16u));
  parallel_for(0, count, static_cast<int>(threads), [&](std::size_t i) { out[i] = load(i); });
  return out;
}

}  // namespace flatface::datasets
