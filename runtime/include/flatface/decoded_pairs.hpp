// A verification set held in memory, every image decoded once, up front (at its stored size: the
// host resizes): what a pair-file format (insightface .bin, LFW pairs.txt, yours) returns once it
// has listed its images and same/different flags.
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
  // Pair i is images 2i and 2i+1; `description` and `details` are what describe() and details()
  // return.
  DecodedPairs(std::vector<Image> images, std::vector<bool> issame, std::string description,
               std::string details = {})
      : images_(std::move(images)),
        issame_(std::move(issame)),
        description_(std::move(description)),
        details_(std::move(details)) {}
  std::size_t num_pairs() const override { return issame_.size(); }
  Image image(std::size_t index) const override { return images_.at(index); }
  const std::vector<bool>& issame() const override { return issame_; }
  std::string describe() const override { return description_; }
  std::string details(std::size_t) const override { return details_; }

 private:
  std::vector<Image> images_;
  std::vector<bool> issame_;
  std::string description_;
  std::string details_;
};

// Runs `load(i)` for i in [0, count) on all cores (at most 16 threads). The first exception (e.g.
// a RuntimeError naming the bad image) is rethrown after the workers stop.
std::vector<Image> decode_all(std::size_t count, const std::function<Image(std::size_t)>& load);

}  // namespace flatface::datasets
