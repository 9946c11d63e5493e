#include "flatface/formats/insightface_rec.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "flatface/options.hpp"

namespace flatface {

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw RuntimeError(what);
}

std::string record_where(const recordio::IndexedReader& reader, std::uint64_t key) {
  return reader.source().name() + ": record key " + std::to_string(key) + " at byte offset " +
         std::to_string(reader.offset(key));
}

recordio::Unpacked unpack_at(const recordio::IndexedReader& reader, std::uint64_t key,
                             const recordio::Frame& frame) {
  try {
    return recordio::unpack(frame.payload.data(), frame.payload.size());
  } catch (const RuntimeError& e) {
    fail(record_where(reader, key) + ": " + e.what());
  }
}

// A float that must hold a whole number in [lo, hi] (a key or a label).
bool whole_in(float v, double lo, double hi) {
  return std::isfinite(v) && std::floor(v) == v && v >= lo && v <= hi;
}

}  // namespace

RecProperty parse_rec_property(const std::string& text, const std::string& name) {
  RecProperty p;
  std::int64_t* fields[3] = {&p.num_classes, &p.height, &p.width};
  std::size_t pos = 0;
  for (int f = 0; f < 3; ++f) {
    while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos]))) ++pos;
    std::size_t start = pos;
    std::int64_t v = 0;
    while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos])) &&
           v < 1'000'000'000'000) {
      v = v * 10 + (text[pos++] - '0');
    }
    while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos]))) ++pos;
    const bool separator_ok = f == 2 ? pos == text.size() : pos < text.size() && text[pos] == ',';
    if (pos == start || v <= 0 || !separator_ok) {
      fail(name + ": expected 'num_classes,height,width' (three positive integers), found '" +
           text.substr(0, 60) + "'");
    }
    *fields[f] = v;
    if (f < 2) ++pos;
  }
  return p;
}

InsightfaceRec InsightfaceRec::open(const std::string& folder) {
  namespace fs = std::filesystem;
  const fs::path dir(folder);
  const std::string rec = (dir / "train.rec").string(), idx = (dir / "train.idx").string();
  for (const auto& f : {rec, idx}) {
    if (!fs::is_regular_file(f)) {
      fail(folder + ": no " + fs::path(f).filename().string() +
           " (an insightface training folder holds train.rec, train.idx and property)");
    }
  }
  std::optional<RecProperty> property;
  const fs::path prop = dir / "property";
  if (fs::is_regular_file(prop)) {
    std::ifstream in(prop);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    property = parse_rec_property(text, prop.string());
  }
  return InsightfaceRec(recordio::IndexedReader::open(rec, idx), property, rec);
}

InsightfaceRec::InsightfaceRec(recordio::IndexedReader reader, std::optional<RecProperty> property,
                               std::string name)
    : reader_(std::move(reader)), property_(property), name_(std::move(name)) {
  if (reader_.contains(0)) {
    recordio::Frame frame = reader_.read(0);
    recordio::Unpacked h = unpack_at(reader_, 0, frame);
    if (h.header.flag > 0) {
      has_header_ = true;
      const float a = h.labels[0], b = h.labels.size() > 1 ? h.labels[1] : a;
      if (!whole_in(a, 1, 1e15) || !whole_in(b, a, 1e15)) {
        fail(record_where(reader_, 0) + ": header record labels (" + std::to_string(a) + ", " +
             std::to_string(b) +
             ") are not an image key end a >= 1 and an identity key end b >= a");
      }
      image_key_end_ = static_cast<std::uint64_t>(a);
      identity_key_end_ = static_cast<std::uint64_t>(b);
      if (identity_key_end_ - 1 > reader_.entries().size()) {
        fail(record_where(reader_, 0) + ": header record announces keys up to " +
             std::to_string(identity_key_end_ - 1) + ", but the index holds only " +
             std::to_string(reader_.entries().size()) + " records");
      }
      image_keys_.reserve(image_key_end_ - 1);
      for (std::uint64_t k = 1; k < image_key_end_; ++k) {
        if (!reader_.contains(k)) {
          fail(name_ + ": the header record (key 0) says image keys are [1, " +
               std::to_string(image_key_end_) + "), but the index has no key " + std::to_string(k));
        }
        image_keys_.push_back(k);
      }
    }
  }
  if (!has_header_) {
    for (const auto& e : reader_.entries()) image_keys_.push_back(e.key);
  }
  if (property_) {
    num_classes_ = property_->num_classes;
  } else if (has_header_ && identity_key_end_ > image_key_end_) {
    num_classes_ = static_cast<std::int64_t>(identity_key_end_ - image_key_end_);
  }
}

RecImage InsightfaceRec::read(std::size_t index) const {
  RecImage out;
  out.key = image_keys_.at(index);
  recordio::Frame frame = reader_.read(out.key);
  out.header = unpack_at(reader_, out.key, frame);
  out.payload = std::move(frame.payload);
  const float label = out.header.label();
  const double hi = num_classes_ > 0 ? static_cast<double>(num_classes_ - 1) : 1e15;
  if (!whole_in(label, 0, hi)) {
    fail(record_where(reader_, out.key) + ": label " + std::to_string(label) +
         " is not a class index in [0, " +
         (num_classes_ > 0 ? std::to_string(num_classes_) : std::string("inf")) + ")" +
         (property_ ? " (num_classes from property)" : ""));
  }
  out.label = static_cast<std::int64_t>(label);
  return out;
}

std::vector<InsightfaceRec::IdentityRange> InsightfaceRec::identity_ranges() const {
  std::vector<IdentityRange> ranges;
  if (!has_header_) return ranges;
  for (std::uint64_t k = image_key_end_; k < identity_key_end_; ++k) {
    if (!reader_.contains(k)) continue;
    recordio::Frame frame = reader_.read(k);
    recordio::Unpacked h = unpack_at(reader_, k, frame);
    if (h.labels.size() < 2 || !whole_in(h.labels[0], 0, 1e15) ||
        !whole_in(h.labels[1], h.labels[0], 1e15)) {
      fail(record_where(reader_, k) + ": identity record needs labels (first, end) of image keys");
    }
    ranges.push_back(
        {k, static_cast<std::uint64_t>(h.labels[0]), static_cast<std::uint64_t>(h.labels[1])});
  }
  return ranges;
}

}  // namespace flatface
