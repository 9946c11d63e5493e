// insightface's training-set layout over RecordIO: a folder with train.rec, train.idx, property.
//
// Record 0 is a header: flag 2 and labels (a, b) — image records are keys [1, a), identity
// records keys [a, b), each identity record with labels (first, end) = its image keys. Without
// such a header (record 0 missing or flag 0) every record in the index is an image, in index
// order (as insightface's MXFaceDataset does). An image record's label is its header label, or
// the first extra label when flag > 0. `property` holds "num_classes,height,width".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "flatface/formats/recordio.hpp"

namespace flatface {

struct RecProperty {
  std::int64_t num_classes = 0;
  std::int64_t height = 0;
  std::int64_t width = 0;
};
RecProperty parse_rec_property(const std::string& text, const std::string& name);

struct RecImage {
  std::uint64_t key = 0;
  std::int64_t label = 0;
  recordio::Unpacked header;
  std::vector<std::uint8_t> payload;  // image bytes are payload[header.image_offset ...]
  const std::uint8_t* image_data() const { return payload.data() + header.image_offset; }
  std::size_t image_size() const { return payload.size() - header.image_offset; }
};

class InsightfaceRec {
 public:
  // Opens folder/train.rec, train.idx and (when present) property.
  static InsightfaceRec open(const std::string& folder);
  // `property` may be empty when there is none.
  InsightfaceRec(recordio::IndexedReader reader, std::optional<RecProperty> property,
                 std::string name);

  std::size_t size() const { return image_keys_.size(); }
  std::int64_t num_classes() const { return num_classes_; }
  const std::optional<RecProperty>& property() const { return property_; }
  bool has_header() const { return has_header_; }
  // Header record's ranges (only with a header): images [begin, end), identities [end, id_end).
  std::uint64_t image_key_end() const { return image_key_end_; }
  std::uint64_t identity_key_end() const { return identity_key_end_; }
  std::uint64_t image_key(std::size_t index) const { return image_keys_.at(index); }
  const recordio::IndexedReader& reader() const { return reader_; }
  const std::string& name() const { return name_; }

  // Reads and checks image record `index` (0-based): the label must be a whole number in
  // [0, num_classes). Errors name the file, key and byte offset. Thread safe.
  RecImage read(std::size_t index) const;

  // Identity records (only with a header): per identity, its image key range [first, end).
  struct IdentityRange {
    std::uint64_t key, first, end;
  };
  std::vector<IdentityRange> identity_ranges() const;

 private:
  recordio::IndexedReader reader_;
  std::optional<RecProperty> property_;
  std::string name_;
  bool has_header_ = false;
  std::uint64_t image_key_end_ = 0, identity_key_end_ = 0;
  std::vector<std::uint64_t> image_keys_;
  std::int64_t num_classes_ = 0;
};

}  // namespace flatface
