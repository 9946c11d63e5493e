// data/: what training and evaluation read. The batch loader (this file), the sample order of
// an epoch (the SDK's sample_order.hpp: a pure function of seed, epoch and index), decoded
// verification pairs, and which dataset plugin recognises a path given on the command line. The
// host alone resizes images, here. Uses experiment/ and plugin_host/ to build datasets; knows
// nothing of training.
//
// The training batch loader: a shuffled, drop-last pass over a TrainSet per epoch, decoded by a
// small pool of threads and prefetched a few whole batches ahead of the training step.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "flatface/backbone.hpp"
#include "flatface/dataset.hpp"

namespace flatface {

// 8-bit RGB pixels -> one InputFormat's input values: a lookup table per input channel and the
// RGB channel each input channel reads (BGR reverses them).
class PixelNormaliser {
 public:
  explicit PixelNormaliser(const InputFormat& format);
  // One image into a [3,S,S] float buffer, resized to S x S when needed and mirrored left-right
  // when `flip`.
  void write(const Image& image, std::int64_t input_size, bool flip, float* chw) const;

 private:
  std::array<std::array<float, 256>, 3> table_{};
  std::array<int, 3> source_{0, 1, 2};
};

struct LoaderOptions {
  std::int64_t batch_size = 0;
  std::int64_t input_size = 0;  // images are resized (bilinear) to input_size x input_size
  InputFormat format;           // channel order and normalisation (the backbone's)
  int threads = 2;              // decoding threads; <= 0: one per core
  std::uint64_t seed = 0;
  bool flip = true;          // random horizontal mirror, one fair coin per (seed, epoch, sample)
  bool pin_memory = false;   // page-locked batches (only where CUDA is available)
  int prefetch_batches = 2;  // whole batches prepared ahead of the consumer
  // Data-parallel training: batch_size is the global batch, and this rank loads rows
  // [share_begin, share_end) of each (share_end -1: to the end). The global order of the samples
  // is the one a single process uses.
  std::int64_t share_begin = 0;
  std::int64_t share_end = -1;
};

// Rank `rank` of `world`'s contiguous rows of a global batch: [⌊r B / W⌋, ⌊(r+1) B / W⌋), so
// the shares differ by at most one row. ConfigError when the batch has fewer rows than ranks.
std::pair<std::int64_t, std::int64_t> batch_share(std::int64_t batch_size, int rank, int world);

struct Batch {
  at::Tensor images;  // [N,3,S,S] float32, normalised as LoaderOptions::format says
  at::Tensor labels;  // [N] int64
};

class Loader {
 public:
  Loader(std::shared_ptr<const TrainSet> data, LoaderOptions options);
  ~Loader();  // stops the workers, also in the middle of an epoch
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // floor(size / batch_size): the last incomplete batch is dropped.
  std::int64_t batches_per_epoch() const;
  // Starts a pass in the order epoch_permutation(size, seed, epoch); the first `skip_batches`
  // batches of that order are skipped (resuming mid-epoch yields exactly the remaining batches).
  void start_epoch(std::int64_t epoch, std::int64_t skip_batches = 0);
  // The next batch of the epoch, or nullopt at its end. An error while reading a sample is
  // rethrown here (RuntimeError naming the sample), and again on later calls until start_epoch.
  std::optional<Batch> next();

  const LoaderOptions& options() const { return options_; }

 private:
  struct Slot;  // one batch being filled
  void work();
  bool claim(std::shared_ptr<Slot>& slot, std::int64_t& position);  // with mutex_ held
  std::pair<at::Tensor, at::Tensor> batch_buffers();                // with mutex_ held
  std::int64_t rows() const { return options_.share_end - options_.share_begin; }
  void fill(Slot& slot, std::int64_t position);

  std::shared_ptr<const TrainSet> data_;
  LoaderOptions options_;
  PixelNormaliser normaliser_;
  bool pinned_ = false;

  std::mutex mutex_;
  std::condition_variable work_ready_;   // workers wait for samples to claim
  std::condition_variable batch_ready_;  // next() waits for the front batch
  bool stopping_ = false;
  bool epoch_started_ = false;
  std::int64_t epoch_ = 0;
  std::vector<std::size_t> order_;
  std::int64_t next_open_ = 0;     // next batch index to allocate
  std::int64_t next_deliver_ = 0;  // next batch index next() hands out
  std::deque<std::shared_ptr<Slot>> in_flight_;
  std::exception_ptr failure_;  // sticky until start_epoch
  // Batch tensors handed out before (unpinned only); one is reused once nobody else holds it
  // (fresh allocations of this size cost page faults that can exceed the decoding itself).
  std::vector<std::pair<at::Tensor, at::Tensor>> pool_;
  std::vector<std::thread> workers_;
};

// Images -> [N,3,S,S] float32 as `format` says (insightface's (x/255 - 0.5)/0.5 in RGB by
// default), each resized and mirrored as PixelNormaliser::write does where flip[i] (an empty
// `flip`: none). Shared by the loader and verification.
at::Tensor images_to_tensor(const std::vector<Image>& images, std::int64_t input_size,
                            const std::vector<bool>& flip, const InputFormat& format = {});

}  // namespace flatface
