// Datasets hand out decoded 8-bit images; the host turns them into tensors.
//
// Who resizes: the host. A dataset returns every image at the size it has on disk (or was drawn
// at); the host resizes it bilinearly (flatface/image_codec.hpp's resize) to the backbone's
// square input when it builds a batch, for training and evaluation alike. A plugin never resizes,
// so `flatface data info` shows the sizes as stored and one rule holds for every format.
//
// Which plugin reads a path given on the command line (`flatface data info PATH`, `eval`, `embed`,
// `data pairs --from`): every dataset plugin with a recognise function is asked; exactly one may
// recognise the path in a role (training set, verification set). The host then calls that role's
// factory with the single option `path` = the absolute path. A path no plugin recognises is an
// error listing every plugin and what it accepts; two plugins recognising it in one role is an
// error naming both (pass `--dataset NAME` to choose).
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
  virtual std::string describe() const = 0;  // one line, used in messages
  // Format facts for `flatface data info`, one "name: value" line each (empty: none);
  // `limit` > 0 asks to examine at most that many records.
  virtual std::string details(std::size_t /*limit*/) const { return {}; }
};

class VerificationSet {
 public:
  virtual ~VerificationSet() = default;
  // Pair i is images 2i and 2i+1.
  virtual std::size_t num_pairs() const = 0;
  virtual Image image(std::size_t index) const = 0;  // thread safe
  virtual const std::vector<bool>& issame() const = 0;
  virtual std::string describe() const = 0;  // one line, used in messages
  // As TrainSet::details.
  virtual std::string details(std::size_t /*limit*/) const { return {}; }
};

struct DatasetArgs {
  Options options;          // the data table, less `plugin` (and `name` for verification sets)
  std::string base_dir;     // relative paths resolve against it (empty: the working directory)
  std::int64_t input_size;  // the backbone's input side: a size to draw procedural images at, not
                            // one to resize to (the host resizes)
  std::uint64_t seed = 0;   // the run's seed (procedural data, splits)
};

// A path from the command line, as a recognise function sees it.
struct PathProbe {
  std::string path;  // absolute
  bool is_directory = false;
  std::vector<std::uint8_t> head;  // a regular file's first bytes (up to 512), for magic numbers
};

// The roles a plugin recognises a probed path in; both false: not this plugin's.
struct PathRecognition {
  bool train = false;
  bool verification = false;
};

// Must be cheap (it runs for every plugin on every path) and must not throw.
using RecogniseFunction = PathRecognition (*)(const PathProbe&);

using TrainSetFactory = std::shared_ptr<TrainSet> (*)(const DatasetArgs&);
using VerificationSetFactory = std::shared_ptr<VerificationSet> (*)(const DatasetArgs&);

}  // namespace flatface
