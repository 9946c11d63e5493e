#include "flatface/decoded_pairs.hpp"

#include <algorithm>
#include <thread>

#include "flatface/image_codec.hpp"
#include "parallel_for.hpp"

namespace flatface::datasets {

std::vector<Image> decode_all(std::size_t count, int side,
                              const std::function<Image(std::size_t)>& load) {
  std::vector<Image> out(count);
  const unsigned threads = std::max(1u, std::min(std::thread::hardware_concurrency(), 16u));
  parallel_for(0, count, static_cast<int>(threads), [&](std::size_t i) {
    Image img = load(i);
    out[i] = (img.height == side && img.width == side) ? std::move(img) : resize(img, side);
  });
  return out;
}

}  // namespace flatface::datasets
