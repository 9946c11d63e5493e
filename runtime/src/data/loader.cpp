#include "data/loader.hpp"

#include <ATen/ops/empty.h>
#include <torch/cuda.h>

#include <algorithm>
#include <array>
#include <string>
#include <tuple>

#include "flatface/image_codec.hpp"
#include "flatface/sample_order.hpp"

namespace flatface {

struct Loader::Slot {
  std::int64_t epoch = 0;
  std::vector<std::size_t> indices;  // the batch's sample indices, in order
  at::Tensor images;
  at::Tensor labels;
  std::int64_t claimed = 0;  // positions handed to workers
  std::int64_t done = 0;     // positions written (or failed)
  std::exception_ptr error;  // the first failure among its samples
};

Loader::Loader(std::shared_ptr<const TrainSet> data, LoaderOptions options)
    : data_(std::move(data)), options_(options), normaliser_(options.format) {
  if (!data_) throw ConfigError("loader: no training set");
  if (options_.batch_size <= 0)
    throw ConfigError("loader: batch_size must be positive, got " +
                      std::to_string(options_.batch_size));
  if (options_.input_size <= 0)
    throw ConfigError("loader: input_size must be positive, got " +
                      std::to_string(options_.input_size));
  if (batches_per_epoch() == 0)
    throw ConfigError("loader: the training set (" + data_->describe() + ") has " +
                      std::to_string(data_->size()) + " images, fewer than one batch of " +
                      std::to_string(options_.batch_size));
  if (options_.share_end < 0) options_.share_end = options_.batch_size;
  if (options_.share_begin < 0 || options_.share_begin >= options_.share_end ||
      options_.share_end > options_.batch_size)
    throw ConfigError("loader: rows [" + std::to_string(options_.share_begin) + ", " +
                      std::to_string(options_.share_end) + ") are not a share of a batch of " +
                      std::to_string(options_.batch_size));
  options_.prefetch_batches = std::max(1, options_.prefetch_batches);
  if (options_.threads <= 0)
    options_.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Page-locked memory needs a CUDA runtime; elsewhere it is meaningless (and throws).
  pinned_ = options_.pin_memory && torch::cuda::is_available();
  for (int t = 0; t < options_.threads; ++t) workers_.emplace_back([this] { work(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  batch_ready_.notify_all();
  for (auto& w : workers_) w.join();
}

std::int64_t Loader::batches_per_epoch() const {
  return static_cast<std::int64_t>(data_->size()) / options_.batch_size;
}

void Loader::start_epoch(std::int64_t epoch, std::int64_t skip_batches) {
  if (skip_batches < 0 || skip_batches > batches_per_epoch())
    throw ConfigError("loader: cannot skip " + std::to_string(skip_batches) +
                      " batches of an epoch of " + std::to_string(batches_per_epoch()));
  auto order = epoch_permutation(data_->size(), options_.seed, epoch);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    epoch_ = epoch;
    order_ = std::move(order);
    in_flight_.clear();  // workers still holding a slot of the old epoch finish it unseen
    failure_ = nullptr;
    next_open_ = skip_batches;
    next_deliver_ = skip_batches;
    epoch_started_ = true;
  }
  work_ready_.notify_all();
}

std::optional<Batch> Loader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!epoch_started_) throw RuntimeError("loader: next() called before start_epoch()");
  if (failure_) std::rethrow_exception(failure_);
  if (next_deliver_ >= batches_per_epoch()) return std::nullopt;
  work_ready_.notify_all();  // in case no slot is open yet
  batch_ready_.wait(lock, [&] {
    if (in_flight_.empty()) return false;
    const auto& front = *in_flight_.front();
    return front.error || front.done == rows();
  });
  auto slot = in_flight_.front();
  in_flight_.pop_front();
  ++next_deliver_;
  if (slot->error) {
    failure_ = slot->error;
    in_flight_.clear();
    std::rethrow_exception(failure_);
  }
  work_ready_.notify_all();  // room for one more batch ahead
  return Batch{slot->images, slot->labels};
}

bool Loader::claim(std::shared_ptr<Slot>& slot, std::int64_t& position) {
  for (const auto& s : in_flight_) {
    if (s->claimed < rows() && !s->error) {
      slot = s;
      position = s->claimed++;
      return true;
    }
  }
  if (!epoch_started_ || failure_ || next_open_ >= batches_per_epoch() ||
      static_cast<std::int64_t>(in_flight_.size()) >= options_.prefetch_batches)
    return false;
  const std::int64_t n = options_.batch_size;
  auto fresh = std::make_shared<Slot>();
  fresh->epoch = epoch_;
  auto first = order_.begin() + next_open_ * n + options_.share_begin;
  fresh->indices.assign(first, first + rows());
  std::tie(fresh->images, fresh->labels) = batch_buffers();
  ++next_open_;
  in_flight_.push_back(fresh);
  slot = fresh;
  position = fresh->claimed++;
  return true;
}

std::pair<at::Tensor, at::Tensor> Loader::batch_buffers() {
  // Only the pool refers to it (no Batch, view or autograd graph outside): safe to overwrite.
  auto unused = [](const at::Tensor& t) {
    return t.use_count() == 1 && t.storage().use_count() == 1;
  };
  for (const auto& buffers : pool_)
    if (unused(buffers.first) && unused(buffers.second)) return buffers;
  const std::int64_t n = rows(), side = options_.input_size;
  std::pair<at::Tensor, at::Tensor> fresh{
      at::empty({n, 3, side, side}, at::dtype(at::kFloat).pinned_memory(pinned_)),
      at::empty({n}, at::dtype(at::kLong).pinned_memory(pinned_))};
  // Pinned blocks are not pooled: a non_blocking copy to the GPU may still read one after the
  // Batch is dropped, and CUDA's host allocator already caches them until such copies complete.
  // Room for the batches in flight, the one the consumer holds and one being released.
  if (!pinned_ && static_cast<int>(pool_.size()) < options_.prefetch_batches + 2)
    pool_.push_back(fresh);
  return fresh;
}

void Loader::work() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    std::shared_ptr<Slot> slot;
    std::int64_t position = 0;
    work_ready_.wait(lock, [&] { return stopping_ || claim(slot, position); });
    if (stopping_) return;
    lock.unlock();
    std::exception_ptr error;
    try {
      fill(*slot, position);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    ++slot->done;
    if (error && !slot->error) slot->error = error;
    if (slot->done == rows() || error) batch_ready_.notify_all();
  }
}

void Loader::fill(Slot& slot, std::int64_t position) {
  const std::size_t index = slot.indices[static_cast<std::size_t>(position)];
  const std::int64_t side = options_.input_size;
  auto where = [&] {
    return data_->describe() + ": sample " + std::to_string(index) + " (epoch " +
           std::to_string(slot.epoch) + "): ";
  };
  Sample sample;
  try {
    sample = data_->get(index);
  } catch (const ConfigError& e) {
    throw ConfigError(where() + e.what());
  } catch (const std::exception& e) {
    throw RuntimeError(where() + e.what());
  }
  if (sample.label < 0 || sample.label >= data_->num_classes())
    throw RuntimeError(where() + "label " + std::to_string(sample.label) + " outside [0, " +
                       std::to_string(data_->num_classes()) + ")");
  const bool flip = options_.flip && flip_sample(options_.seed, slot.epoch, index);
  try {
    normaliser_.write(sample.image, side, flip,
                      slot.images.data_ptr<float>() + position * 3 * side * side);
  } catch (const std::exception& e) {
    throw RuntimeError(where() + e.what());
  }
  slot.labels.data_ptr<std::int64_t>()[position] = sample.label;
}

std::pair<std::int64_t, std::int64_t> batch_share(std::int64_t batch_size, int rank, int world) {
  if (batch_size < world)
    throw ConfigError("train.batch_size = " + std::to_string(batch_size) +
                      " is the global batch; it cannot be shared among " + std::to_string(world) +
                      " ranks (at least one sample each)");
  return {batch_size * rank / world, batch_size * (rank + 1) / world};
}

PixelNormaliser::PixelNormaliser(const InputFormat& format) {
  for (int c = 0; c < 3; ++c) {
    source_[c] = format.bgr ? 2 - c : c;
    // insightface: ((x / 255) - 0.5) / 0.5, in float as written, whatever the mean and std
    for (int v = 0; v < 256; ++v)
      table_[c][v] = (static_cast<float>(v) / 255.0f - format.mean[c]) / format.std[c];
  }
}

void PixelNormaliser::write(const Image& image, std::int64_t input_size, bool flip,
                            float* chw) const {
  if (image.height <= 0 || image.width <= 0 ||
      image.pixels.size() != static_cast<std::size_t>(image.height) * image.width * 3)
    throw RuntimeError("image of " + std::to_string(image.height) + "x" +
                       std::to_string(image.width) + " with " +
                       std::to_string(image.pixels.size()) + " bytes; expected height*width*3 > 0");
  const int s = static_cast<int>(input_size);
  // The one place images are resized (dataset.hpp): datasets hand them out at their stored size.
  Image resized;
  const Image* src = &image;
  if (image.height != s || image.width != s) {
    resized = resize(image, s);
    src = &resized;
  }
  const std::ptrdiff_t plane = static_cast<std::ptrdiff_t>(s) * s;
  const auto& [t0, t1, t2] = table_;
  const auto [c0, c1, c2] = source_;
  for (int y = 0; y < s; ++y) {
    const std::uint8_t* row = src->pixels.data() + static_cast<std::ptrdiff_t>(y) * s * 3;
    float* out = chw + static_cast<std::ptrdiff_t>(y) * s;
    for (int x = 0; x < s; ++x) {
      const std::uint8_t* px = row + 3 * (flip ? s - 1 - x : x);
      out[x] = t0[px[c0]];
      out[plane + x] = t1[px[c1]];
      out[2 * plane + x] = t2[px[c2]];
    }
  }
}

at::Tensor images_to_tensor(const std::vector<Image>& images, std::int64_t input_size,
                            const std::vector<bool>& flip, const InputFormat& format) {
  if (!flip.empty() && flip.size() != images.size())
    throw RuntimeError("images_to_tensor: " + std::to_string(images.size()) + " images but " +
                       std::to_string(flip.size()) + " flip flags");
  const PixelNormaliser normaliser(format);
  const auto n = static_cast<std::int64_t>(images.size());
  at::Tensor out = at::empty({n, 3, input_size, input_size}, at::kFloat);
  float* base = out.data_ptr<float>();
  for (std::int64_t i = 0; i < n; ++i)
    normaliser.write(images[i], input_size, !flip.empty() && flip[i],
                     base + i * 3 * input_size * input_size);
  return out;
}

}  // namespace flatface
