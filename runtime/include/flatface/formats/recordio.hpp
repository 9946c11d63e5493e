// MXNet RecordIO, the container of insightface's train.rec, with its text index (train.idx).
//
// A record on disk: [u32 magic 0xced7230a][u32 cflag << 29 | length][length bytes][zeros to a
// multiple of 4], little endian. A payload that contains the magic at a 4-aligned position is
// written as several parts (cflag 1 = first, 2 = middle, 3 = last; 0 = whole record) with that
// magic left out between them; reading joins the parts and puts it back.
//
// The payload of an image record starts with an IRHeader, struct `<IfQQ` (flag, label, id, id2).
// When flag > 0 the header's label field is unused and `flag` float32 labels follow the header;
// then come the encoded image bytes.
//
// The index is text, one record per line: "key\toffset\n" (offset = byte offset of the record).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace flatface::recordio {

constexpr std::uint32_t kMagic = 0xced7230a;
constexpr std::uint32_t kMaxPartLength = (1u << 29) - 1;
constexpr std::size_t kIRHeaderSize = 24;

// Random-access bytes. Reads are thread safe.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual std::uint64_t size() const = 0;
  // Exactly n bytes at offset; [offset, offset + n) must lie within size().
  virtual void read(std::uint64_t offset, void* out, std::size_t n) const = 0;
  virtual const std::string& name() const = 0;
};

// A file read with pread, never loaded whole.
std::shared_ptr<ByteSource> open_file_source(const std::string& path);
// Bytes in memory (tests, fuzzing).
std::shared_ptr<ByteSource> memory_source(std::vector<std::uint8_t> bytes, std::string name);

// One record's payload (parts joined) and where the next record starts.
struct Frame {
  std::vector<std::uint8_t> payload;
  std::uint64_t end = 0;
  int parts = 1;
};
// Reads the record at `offset`; `key` (or -1) goes into error messages.
Frame read_frame(const ByteSource& source, std::uint64_t offset, std::int64_t key = -1);
// The first part's cflag and length (for format summaries without reading payloads).
struct FrameHeader {
  std::uint32_t cflag = 0;
  std::uint32_t length = 0;
};
FrameHeader read_frame_header(const ByteSource& source, std::uint64_t offset,
                              std::int64_t key = -1);

// Appends the record's bytes as written to a .rec file (parts, padding) to `out`.
void append_frame(std::vector<std::uint8_t>& out, const std::uint8_t* payload, std::size_t size);

struct IRHeader {
  std::uint32_t flag = 0;
  float label = 0;
  std::uint64_t id = 0;
  std::uint64_t id2 = 0;
};

struct Unpacked {
  IRHeader header;
  std::vector<float> labels;     // the `flag` labels after the header (empty when flag == 0)
  std::size_t image_offset = 0;  // where the image bytes start in the payload
  // The label a training record carries: header.label, or the first extra label when flag > 0.
  float label() const { return labels.empty() ? header.label : labels.front(); }
};
// Throws RuntimeError (without file or key; callers add them) when the payload is too short.
Unpacked unpack(const std::uint8_t* payload, std::size_t size);
// header.flag and header.label are set from `labels` as MXNet's pack does: with labels, flag =
// their count and the label field 0; without, flag = 0 and the label field is kept.
std::vector<std::uint8_t> pack(IRHeader header, const std::vector<float>& labels,
                               const std::uint8_t* image, std::size_t size);

struct IndexEntry {
  std::uint64_t key = 0;
  std::uint64_t offset = 0;
};
// Parses index text; errors name `name` and the line.
std::vector<IndexEntry> parse_index(const std::string& text, const std::string& name);

// Random access by key through the index. Opening checks every offset against the file size;
// records themselves are checked when read. Thread safe.
class IndexedReader {
 public:
  IndexedReader(std::shared_ptr<ByteSource> rec, std::vector<IndexEntry> index,
                std::string index_name);
  static IndexedReader open(const std::string& rec_path, const std::string& idx_path);

  const std::vector<IndexEntry>& entries() const { return index_; }  // in index-file order
  bool contains(std::uint64_t key) const { return offsets_.count(key) != 0; }
  std::uint64_t offset(std::uint64_t key) const;  // RuntimeError for an unknown key
  Frame read(std::uint64_t key) const;
  FrameHeader read_header(std::uint64_t key) const;
  const ByteSource& source() const { return *rec_; }

 private:
  std::shared_ptr<ByteSource> rec_;
  std::vector<IndexEntry> index_;
  std::unordered_map<std::uint64_t, std::uint64_t> offsets_;
  std::string index_name_;
};

// Writes a .rec and its .idx. Keys are written in the order given.
class Writer {
 public:
  Writer(const std::string& rec_path, const std::string& idx_path);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  void write(std::uint64_t key, const std::vector<std::uint8_t>& payload);
  // Flushes both files; throws RuntimeError when that fails. Called by the destructor otherwise.
  void close();

 private:
  struct Files;
  std::unique_ptr<Files> files_;
  std::uint64_t offset_ = 0;
};

}  // namespace flatface::recordio
