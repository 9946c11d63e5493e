// A verification set held in memory: every image decoded (in parallel) and resized to the input
// size once, up front. Shared by the file-backed pair sets (insightface-bin, lfw-pairs).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "flatface/dataset.hpp"
#include "formats/image_codec.hpp"

namespace flatface::datasets {

class DecodedPairs final : public VerificationSet {
 public:
  DecodedPairs(std::vector<Image> images, std::vector<bool> issame, std::string description)
      : images_(std::move(images)),
        issame_(std::move(issame)),
        description_(std::move(description)) {}
  std::size_t num_pairs() const override { return issame_.size(); }
  Image image(std::size_t index) const override { return images_.at(index); }
  const std::vector<bool>& issame() const override { return issame_; }
  std::string describe() const override { return description_; }

 private:
  std::vector<Image> images_;
  std::vector<bool> issame_;
  std::string description_;
};

// Runs `load(i)` for i in [0, count) on all cores and resizes each result to side x side. The
// first exception (e.g. a RuntimeError naming the bad image) is rethrown after the workers stop.
inline std::vector<Image> decode_all(std::size_t count, int side,
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
