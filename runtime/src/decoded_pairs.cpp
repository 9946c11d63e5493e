#include "flatface/decoded_pairs.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include "flatface/image_codec.hpp"

namespace flatface::datasets {

std::vector<Image> decode_all(std::size_t count, int side,
                              const std::function<Image(std::size_t)>& load) {
  std::vector<Image> out(count);
  std::atomic<std::size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&] {
    for (std::size_t i = next++; i < count; i = next++) {
      try {
        Image img = load(i);
        out[i] = (img.height == side && img.width == side) ? std::move(img) : resize(img, side);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = count;
      }
    }
  };
  unsigned threads = std::max(1u, std::min(std::thread::hardware_concurrency(), 16u));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  return out;
}

}  // namespace flatface::datasets
