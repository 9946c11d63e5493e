// A verification set held in memory, every image decoded and resized to the input size once, up
// front: what a pair-file format (insightface .bin, LFW pairs.txt, yours) returns once it has
// listed its images and same/different flags.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "flatface/dataset.hpp"

namespace flatface::datasets {

class DecodedPairs final : public VerificationSet {
 public:
  // Pair i is images 2i and 2i+1; `description` is what describe() returns.
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

// Runs `load(i)` for i in [0, count) on all cores (at most 16 threads) and resizes each result to
// side x side (flatface/image_codec.hpp's resize). The first exception (e.g. a RuntimeError naming
// the bad image) is rethrown after the workers stop.
std::vector<Image> decode_all(std::size_t count, int side,
                              const std::function<Image(std::size_t)>& load);

}  // namespace flatface::datasets
