// `insightface-rec`: insightface's training folder (train.rec, train.idx, property) as a TrainSet.
// Recognises a folder holding train.rec (or the train.rec file itself) given on the command line.
#include "flatface/formats/insightface_rec.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>

#include "flatface/image_codec.hpp"
#include "flatface/image_tally.hpp"
#include "flatface/plugin.hpp"

namespace flatface::datasets {
namespace {

namespace fs = std::filesystem;

class RecTrainSet final : public TrainSet {
 public:
  RecTrainSet(InsightfaceRec rec, std::string folder)
      : rec_(std::move(rec)), folder_(std::move(folder)) {}

  std::size_t size() const override { return rec_.size(); }
  std::int64_t num_classes() const override { return rec_.num_classes(); }

  // At the stored size (insightface packs are 112x112); the host resizes others.
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
    s.label = r.label;
    return s;
  }

  std::string describe() const override {
    return "insightface-rec " + folder_ + ": " + std::to_string(size()) + " images, " +
           std::to_string(num_classes()) + " classes";
  }

  // The index, the header record's ranges, the label layout and the payloads, read from the
  // record headers without decoding an image.
  std::string details(std::size_t limit) const override {
    std::ostringstream out;
    out << "file:      " << rec_.name() << " (" << rec_.reader().source().size() << " bytes)\n";
    if (rec_.property()) {
      const auto& p = *rec_.property();
      out << "property:  " << p.num_classes << " classes, images " << p.width << "x" << p.height
          << "\n";
    } else {
      out << "property:  none\n";
    }
    std::uint64_t max_key = 0;
    for (const auto& e : rec_.reader().entries()) max_key = std::max(max_key, e.key);
    out << "index:     " << rec_.reader().entries().size() << " records, keys up to " << max_key
        << "\n";
    if (rec_.has_header()) {
      out << "header:    record 0, flag 2 labels: image keys [1, " << rec_.image_key_end()
          << "), identity keys [" << rec_.image_key_end() << ", " << rec_.identity_key_end()
          << ")\n";
    } else {
      out << "header:    none (every indexed record is an image)\n";
    }
    const std::size_t n = limit ? std::min(limit, rec_.size()) : rec_.size();
    Tally label_layout;
    ImageTally payloads;
    std::map<std::int64_t, std::size_t> per_label;
    std::size_t multipart = 0;
    for (std::size_t i = 0; i < n; ++i) {
      RecImage r = rec_.read(i);
      ++per_label[r.label];
      ++label_layout[r.header.header.flag == 0
                         ? std::string("flag 0 (label in the header)")
                         : "flag " + std::to_string(r.header.header.flag) +
                               " (float labels after the header, first is the class)"];
      payloads.add(r.image_data(), r.image_size());
      if (rec_.reader().read_header(r.key).cflag != 0) ++multipart;
    }
    std::vector<std::size_t> counts;
    for (const auto& [label, c] : per_label) counts.push_back(c);
    out << "images:    " << rec_.size()
        << (n < rec_.size() ? " (examined " + std::to_string(n) + ")" : "") << "\n"
        << "labels:    " << per_label.size() << " labels seen, "
        << (per_label.empty() ? 0 : per_label.begin()->first) << ".."
        << (per_label.empty() ? 0 : per_label.rbegin()->first) << "; " << tally_text(label_layout)
        << "\n"
        << "per class: " << per_class_text(counts) << "\n"
        << "payloads:  " << payloads.formats() << "\n"
        << "sizes:     " << payloads.sizes() << "\n"
        << "multi-part records: " << multipart << "\n";
    if (rec_.has_header()) out << "identity records: " << rec_.identity_ranges().size() << "\n";
    return out.str();
  }

 private:
  InsightfaceRec rec_;
  std::string folder_;
};

// A folder holding train.rec, or that file itself.
PathRecognition recognise(const PathProbe& p) {
  const fs::path path(p.path);
  const bool ours =
      p.is_directory ? fs::is_regular_file(path / "train.rec") : path.filename() == "train.rec";
  return PathRecognition{ours, false};
}

std::shared_ptr<TrainSet> make_train_set(const DatasetArgs& args) {
  fs::path path = args.options.require_string("path");
  if (path.is_relative()) path = fs::path(args.base_dir) / path;
  if (fs::is_regular_file(path) && path.filename() == "train.rec") path = path.parent_path();
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
  return std::make_shared<RecTrainSet>(std::move(rec), path.string());
}

}  // namespace
}  // namespace flatface::datasets

FLATFACE_PLUGIN(flatface::dataset_entry("insightface-rec",
                                        "insightface train.rec/.idx/property training folder",
                                        &flatface::datasets::make_train_set, nullptr,
                                        &flatface::datasets::recognise,
                                        "folders holding train.rec (training set)"))
