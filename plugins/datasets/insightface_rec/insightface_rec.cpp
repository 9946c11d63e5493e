// `insightface-rec`: insightface's training folder (train.rec, train.idx, property) as a TrainSet.
#include "flatface/formats/insightface_rec.hpp"

#include <filesystem>

#include "flatface/image_codec.hpp"
#include "flatface/plugin.hpp"

namespace flatface::datasets {
namespace {

class RecTrainSet final : public TrainSet {
 public:
  RecTrainSet(InsightfaceRec rec, std::string folder, std::int64_t input_size)
      : rec_(std::move(rec)), folder_(std::move(folder)), input_size_(input_size) {}

  std::size_t size() const override { return rec_.size(); }
  std::int64_t num_classes() const override { return rec_.num_classes(); }

  Sample get(std::size_t index) const override {
    RecImage r = rec_.read(index);
    Sample s;
    try {
      s.image = decode_image(r.image_data(), r.image_size());
    } catch (const RuntimeError& e) {
      throw RuntimeError(rec_.name() + ": record key " + std::to_string(r.key) +
                         " at byte offset " + std::to_string(rec_.reader().offset(r.key)) +
                         ": image: " + e.what());
    }
    // Images of another size (insightface packs are 112x112) are resized bilinearly to the
    // backbone's square input, without keeping the aspect ratio.
    if (s.image.width != input_size_ || s.image.height != input_size_) {
      s.image = resize(s.image, static_cast<int>(input_size_));
    }
    s.label = r.label;
    return s;
  }

  std::string describe() const override {
    return "insightface-rec " + folder_ + ": " + std::to_string(size()) + " images, " +
           std::to_string(num_classes()) + " classes";
  }

 private:
  InsightfaceRec rec_;
  std::string folder_;
  std::int64_t input_size_;
};

std::shared_ptr<TrainSet> make_train_set(const DatasetArgs& args) {
  namespace fs = std::filesystem;
  fs::path path = args.options.require_string("path");
  if (path.is_relative()) path = fs::path(args.base_dir) / path;
  if (!fs::is_directory(path)) {
    throw ConfigError(args.options.pos_of("path").str() + ": dataset 'insightface-rec': '" +
                      path.string() + "' is not a folder (expected one holding train.rec, " +
                      "train.idx and property)");
  }
  InsightfaceRec rec = InsightfaceRec::open(path.string());
  if (rec.size() == 0) throw RuntimeError(rec.name() + ": no image records");
  if (rec.num_classes() <= 0) {
    throw RuntimeError(path.string() +
                       ": no property file and no identity records: cannot tell the number of "
                       "classes (write 'num_classes,112,112' to " +
                       (path / "property").string() + ")");
  }
  return std::make_shared<RecTrainSet>(std::move(rec), path.string(), args.input_size);
}

}  // namespace
}  // namespace flatface::datasets

FLATFACE_PLUGIN(flatface::dataset_entry("insightface-rec",
                                        "insightface train.rec/.idx/property training folder",
                                        &flatface::datasets::make_train_set, nullptr))
