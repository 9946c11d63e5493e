// Tiny stand-ins of every plugin kind, so that the CLI and the registry can be tested without the
// real plugins: a linear backbone, a cosine head, procedural data and a plain SGD step.
#include <torch/nn/modules/linear.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "flatface/plugin.hpp"
#include "toy_step.hpp"

namespace {

using namespace flatface;

class ToyBackbone : public Backbone {
 public:
  ToyBackbone(std::int64_t input_size, std::int64_t dim)
      : input_size_(input_size),
        dim_(dim),
        fc_(register_module("fc", torch::nn::Linear(3 * input_size * input_size, dim))) {}
  torch::Tensor forward(const torch::Tensor& images) override { return fc_(images.flatten(1)); }
  std::int64_t embedding_dim() const override { return dim_; }
  std::int64_t input_size() const override { return input_size_; }

 private:
  std::int64_t input_size_, dim_;
  torch::nn::Linear fc_;
};

std::shared_ptr<Backbone> make_backbone(const BackboneArgs& args) {
  return std::make_shared<ToyBackbone>(args.options.get_int("input_size", 8),
                                       args.options.get_int("embedding", 4));
}

// logits = s cos(theta_j): no margin.
class ToyHead : public MarginHead {
 public:
  ToyHead(std::int64_t classes, std::int64_t dim, double s)
      : s_(s), weight_(register_parameter("weight", torch::randn({classes, dim}))) {}
  torch::Tensor logits(const torch::Tensor& embeddings, const torch::Tensor&) override {
    return cosine(embeddings) * s_;
  }
  torch::Tensor cosine(const torch::Tensor& embeddings) override {
    auto x = embeddings / embeddings.norm(2, {1}, true);
    auto w = weight_ / weight_.norm(2, {1}, true);
    return x.matmul(w.t());
  }

 private:
  double s_;
  torch::Tensor weight_;
};

std::shared_ptr<MarginHead> make_head(const HeadArgs& args) {
  return std::make_shared<ToyHead>(args.num_classes, args.embedding_dim,
                                   args.options.get_double("s", 1.0));
}

Image toy_image(std::int64_t side, std::size_t index) {
  Image im;
  im.height = im.width = static_cast<int>(side);
  im.pixels.resize(static_cast<std::size_t>(side * side * 3));
  for (std::size_t k = 0; k < im.pixels.size(); ++k)
    im.pixels[k] = static_cast<std::uint8_t>((index * 31 + k * 7) % 256);
  return im;
}

// An optional `path` must exist: a missing data file is a runtime failure, not a config error.
void check_path(const DatasetArgs& args) {
  std::string path = args.options.get_string("path", "");
  if (!path.empty() && !std::filesystem::exists(path))
    throw RuntimeError(path + ": cannot open the toy data file");
}

class ToyTrainSet : public TrainSet {
 public:
  ToyTrainSet(std::int64_t side, std::int64_t classes, std::size_t images)
      : side_(side), classes_(classes), images_(images) {}
  std::size_t size() const override { return images_; }
  std::int64_t num_classes() const override { return classes_; }
  Sample get(std::size_t i) const override {
    return {toy_image(side_, i), static_cast<std::int64_t>(i) % classes_};
  }
  std::string describe() const override { return "toy training set"; }

 private:
  std::int64_t side_, classes_;
  std::size_t images_;
};

std::shared_ptr<TrainSet> make_train(const DatasetArgs& args) {
  check_path(args);
  return std::make_shared<ToyTrainSet>(args.input_size, args.options.get_int("classes", 3),
                                       static_cast<std::size_t>(args.options.get_int("images", 6)));
}

class ToyPairs : public VerificationSet {
 public:
  ToyPairs(std::int64_t side, std::size_t pairs) : side_(side), issame_(pairs) {
    for (std::size_t i = 0; i < pairs; ++i) issame_[i] = i % 2 == 0;
  }
  std::size_t num_pairs() const override { return issame_.size(); }
  Image image(std::size_t i) const override { return toy_image(side_, i); }
  const std::vector<bool>& issame() const override { return issame_; }
  std::string describe() const override { return "toy pairs"; }

 private:
  std::int64_t side_;
  std::vector<bool> issame_;
};

std::shared_ptr<VerificationSet> make_pairs(const DatasetArgs& args) {
  check_path(args);
  return std::make_shared<ToyPairs>(args.input_size,
                                    static_cast<std::size_t>(args.options.get_int("pairs", 2)));
}

// Files that start with "TOYPAIRS", whatever their name: recognised by content, which may collide
// with a plugin that recognises by extension (test_dataset_recognition names such a file x.bin).
flatface::PathRecognition recognise(const flatface::PathProbe& p) {
  const std::string magic = "TOYPAIRS";
  const bool ours =
      p.head.size() >= magic.size() && std::equal(magic.begin(), magic.end(), p.head.begin());
  return {false, ours};
}

}  // namespace

FLATFACE_PLUGIN(flatface::backbone_entry("test-toy-backbone",
                                         "linear map of the pixels (test plugin)", &make_backbone),
                flatface::head_entry("test-toy-head", "s cos(theta), no margin (test plugin)",
                                     &make_head),
                flatface::dataset_entry("test-toy-data", "procedural images (test plugin)",
                                        &make_train, &make_pairs, &recognise,
                                        "files starting with TOYPAIRS (test pairs)"),
                flatface::perturbation_entry("test-toy", "plain SGD step (test plugin)",
                                             &flatface_test::make_toy_step))
