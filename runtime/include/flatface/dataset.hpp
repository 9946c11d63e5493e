// Datasets hand out decoded 8-bit images; the host's loader turns them into tensors.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flatface/options.hpp"

namespace flatface {

// An 8-bit RGB image, rows of height*width*3 bytes (HWC).
struct Image {
  int height = 0;
  int width = 0;
  std::vector<std::uint8_t> pixels;
};

struct Sample {
  Image image;
  std::int64_t label = 0;
};

class TrainSet {
 public:
  virtual ~TrainSet() = default;
  virtual std::size_t size() const = 0;
  virtual std::int64_t num_classes() const = 0;
  // Must be safe to call from several threads at once.
  virtual Sample get(std::size_t index) const = 0;
  virtual std::string describe() const = 0;
};

class VerificationSet {
 public:
  virtual ~VerificationSet() = default;
  // Pair i is images 2i and 2i+1.
  virtual std::size_t num_pairs() const = 0;
  virtual Image image(std::size_t index) const = 0;  // thread safe
  virtual const std::vector<bool>& issame() const = 0;
  virtual std::string describe() const = 0;
};

struct DatasetArgs {
  Options options;          // the data table, less `plugin` (and `name` for verification sets)
  std::string base_dir;     // relative paths resolve against it (empty: the working directory)
  std::int64_t input_size;  // the backbone's square input side
  std::uint64_t seed = 0;   // the run's seed (procedural data, splits)
};

using TrainSetFactory = std::shared_ptr<TrainSet> (*)(const DatasetArgs&);
using VerificationSetFactory = std::shared_ptr<VerificationSet> (*)(const DatasetArgs&);

}  // namespace flatface
