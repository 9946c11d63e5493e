#include "flatface/formats/recordio.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "flatface/options.hpp"

namespace flatface::recordio {

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw RuntimeError(what);
}

std::uint32_t get_u32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
         std::uint32_t{p[3]} << 24;
}
std::uint64_t get_u64(const std::uint8_t* p) {
  return std::uint64_t{get_u32(p)} | std::uint64_t{get_u32(p + 4)} << 32;
}
float get_f32(const std::uint8_t* p) {
  std::uint32_t bits = get_u32(p);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_u64(std::vector<std::uint8_t>& out, std::uint64_t v) {
  put_u32(out, static_cast<std::uint32_t>(v));
  put_u32(out, static_cast<std::uint32_t>(v >> 32));
}
void put_f32(std::vector<std::uint8_t>& out, float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, 4);
  put_u32(out, bits);
}

std::uint64_t padded(std::uint64_t n) {
  return (n + 3) / 4 * 4;
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

std::string where(const ByteSource& source, std::uint64_t offset, std::int64_t key) {
  std::string s = source.name() + ": record ";
  if (key >= 0) s += "key " + std::to_string(key) + " ";
  return s + "at byte offset " + std::to_string(offset);
}

FrameHeader read_part_header(const ByteSource& source, std::uint64_t pos, std::uint64_t offset,
                             std::int64_t key) {
  const std::uint64_t size = source.size();
  if (pos > size || size - pos < 8) {
    fail(where(source, offset, key) + ": truncated: the part header at byte " +
         std::to_string(pos) + " needs 8 bytes, the file has " +
         std::to_string(pos > size ? 0 : size - pos));
  }
  std::uint8_t head[8];
  source.read(pos, head, 8);
  std::uint32_t magic = get_u32(head), lrec = get_u32(head + 4);
  if (magic != kMagic) {
    fail(where(source, offset, key) + ": bad magic " + hex32(magic) + " at byte " +
         std::to_string(pos) + ", expected " + hex32(kMagic));
  }
  FrameHeader h{lrec >> 29, lrec & kMaxPartLength};
  if (size - pos - 8 < h.length) {
    fail(where(source, offset, key) + ": truncated: the part at byte " + std::to_string(pos) +
         " declares " + std::to_string(h.length) + " payload bytes, the file has " +
         std::to_string(size - pos - 8));
  }
  return h;
}

class FileSource final : public ByteSource {
 public:
  explicit FileSource(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail("cannot open '" + path_ + "': " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd_);
      fail("cannot read '" + path_ + "': not a regular file");
    }
    size_ = static_cast<std::uint64_t>(st.st_size);
  }
  ~FileSource() override { ::close(fd_); }
  std::uint64_t size() const override { return size_; }
  const std::string& name() const override { return path_; }
  void read(std::uint64_t offset, void* out, std::size_t n) const override {
    auto* dst = static_cast<char*>(out);
    while (n > 0) {
      ssize_t got = ::pread(fd_, dst, n, static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        fail("cannot read " + std::to_string(n) + " bytes at byte " + std::to_string(offset) +
             " of '" + path_ +
             "': " + (got == 0 ? "unexpected end of file" : std::strerror(errno)));
      }
      dst += got;
      offset += static_cast<std::uint64_t>(got);
      n -= static_cast<std::size_t>(got);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

class MemorySource final : public ByteSource {
 public:
  MemorySource(std::vector<std::uint8_t> bytes, std::string name)
      : bytes_(std::move(bytes)), name_(std::move(name)) {}
  std::uint64_t size() const override { return bytes_.size(); }
  const std::string& name() const override { return name_; }
  void read(std::uint64_t offset, void* out, std::size_t n) const override {
    if (offset > bytes_.size() || bytes_.size() - offset < n) {
      fail(name_ + ": read of " + std::to_string(n) + " bytes at byte " + std::to_string(offset) +
           " past the end (" + std::to_string(bytes_.size()) + " bytes)");
    }
    if (n) std::memcpy(out, bytes_.data() + offset, n);
  }

 private:
  std::vector<std::uint8_t> bytes_;
  std::string name_;
};

}  // namespace

std::shared_ptr<ByteSource> open_file_source(const std::string& path) {
  return std::make_shared<FileSource>(path);
}

std::shared_ptr<ByteSource> memory_source(std::vector<std::uint8_t> bytes, std::string name) {
  return std::make_shared<MemorySource>(std::move(bytes), std::move(name));
}

FrameHeader read_frame_header(const ByteSource& source, std::uint64_t offset, std::int64_t key) {
  return read_part_header(source, offset, offset, key);
}

Frame read_frame(const ByteSource& source, std::uint64_t offset, std::int64_t key) {
  Frame frame;
  frame.parts = 0;
  std::uint64_t pos = offset;
  bool continuing = false;
  while (true) {
    FrameHeader h = read_part_header(source, pos, offset, key);
    const bool continuation = h.cflag == 2 || h.cflag == 3;
    if (continuation != continuing) {
      fail(where(source, offset, key) + ": part at byte " + std::to_string(pos) + " has cflag " +
           std::to_string(h.cflag) + ", expected " +
           (continuing ? "2 or 3 (continuing a multi-part record)" : "0 or 1 (a record start)"));
    }
    if (continuing) {  // the writer dropped the magic here when it split the payload
      for (int i = 0; i < 4; ++i)
        frame.payload.push_back(static_cast<std::uint8_t>(kMagic >> (8 * i)));
    }
    std::size_t at = frame.payload.size();
    frame.payload.resize(at + h.length);
    source.read(pos + 8, frame.payload.data() + at, h.length);
    pos += 8 + padded(h.length);
    ++frame.parts;
    if (h.cflag == 0 || h.cflag == 3) break;
    continuing = true;
  }
  frame.end = pos;
  return frame;
}

void append_frame(std::vector<std::uint8_t>& out, const std::uint8_t* payload, std::size_t size) {
  auto emit = [&](std::uint32_t cflag, std::size_t from, std::size_t to) {
    std::size_t length = to - from;
    if (length > kMaxPartLength) {
      fail("record part of " + std::to_string(length) + " bytes exceeds the RecordIO limit of " +
           std::to_string(kMaxPartLength));
    }
    put_u32(out, kMagic);
    put_u32(out, cflag << 29 | static_cast<std::uint32_t>(length));
    out.insert(out.end(), payload + from, payload + to);
    out.resize(out.size() + (padded(length) - length), 0);
  };
  // A 4-aligned magic inside the payload would look like a record start to a reader that scans
  // for boundaries, so the payload is split there and the magic implied between the parts.
  std::size_t start = 0;
  bool split = false;
  for (std::size_t i = 0; i + 4 <= size; i += 4) {
    if (get_u32(payload + i) == kMagic) {
      emit(split ? 2 : 1, start, i);
      start = i + 4;
      split = true;
    }
  }
  emit(split ? 3 : 0, start, size);
}

Unpacked unpack(const std::uint8_t* payload, std::size_t size) {
  if (size < kIRHeaderSize) {
    fail("payload of " + std::to_string(size) + " bytes is shorter than the " +
         std::to_string(kIRHeaderSize) + "-byte IRHeader (flag, label, id, id2)");
  }
  Unpacked u;
  u.header.flag = get_u32(payload);
  u.header.label = get_f32(payload + 4);
  u.header.id = get_u64(payload + 8);
  u.header.id2 = get_u64(payload + 16);
  const std::size_t rest = size - kIRHeaderSize;
  if (u.header.flag > rest / 4) {
    fail("IRHeader flag " + std::to_string(u.header.flag) +
         " announces that many float32 labels (" + std::to_string(4ull * u.header.flag) +
         " bytes), but only " + std::to_string(rest) + " bytes follow the header");
  }
  u.labels.resize(u.header.flag);
  for (std::uint32_t i = 0; i < u.header.flag; ++i) {
    u.labels[i] = get_f32(payload + kIRHeaderSize + 4 * i);
  }
  u.image_offset = kIRHeaderSize + 4 * std::size_t{u.header.flag};
  return u;
}

std::vector<std::uint8_t> pack(IRHeader header, const std::vector<float>& labels,
                               const std::uint8_t* image, std::size_t size) {
  if (!labels.empty()) {
    header.flag = static_cast<std::uint32_t>(labels.size());
    header.label = 0;
  } else {
    header.flag = 0;
  }
  std::vector<std::uint8_t> out;
  out.reserve(kIRHeaderSize + 4 * labels.size() + size);
  put_u32(out, header.flag);
  put_f32(out, header.label);
  put_u64(out, header.id);
  put_u64(out, header.id2);
  for (float l : labels) put_f32(out, l);
  out.insert(out.end(), image, image + size);
  return out;
}

std::vector<IndexEntry> parse_index(const std::string& text, const std::string& name) {
  std::vector<IndexEntry> entries;
  std::unordered_map<std::uint64_t, std::size_t> first_line;
  std::size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    auto bad = [&](const std::string& why) {
      std::string shown = line.size() > 40 ? line.substr(0, 40) + "..." : line;
      for (char& c : shown) {
        if (static_cast<unsigned char>(c) < 32 && c != '\t') c = '?';
      }
      fail(name + ":" + std::to_string(line_no) + ": " + why + " (found '" + shown + "')");
    };
    std::size_t i = 0;
    auto skip_space = [&] {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    };
    auto number = [&](const char* field) {
      skip_space();
      if (i >= line.size() || line[i] < '0' || line[i] > '9') {
        bad(std::string("expected 'key<TAB>offset': missing ") + field);
      }
      std::uint64_t v = 0;
      while (i < line.size() && line[i] >= '0' && line[i] <= '9') {
        if (v > (std::numeric_limits<std::uint64_t>::max() - 9) / 10)
          bad(std::string(field) + " too large");
        v = v * 10 + static_cast<std::uint64_t>(line[i] - '0');
        ++i;
      }
      return v;
    };
    skip_space();
    if (i == line.size()) continue;  // blank line
    IndexEntry e;
    e.key = number("key");
    e.offset = number("offset");
    skip_space();
    if (i != line.size()) bad("expected 'key<TAB>offset' and nothing after it");
    auto [it, fresh] = first_line.emplace(e.key, line_no);
    if (!fresh) {
      bad("key " + std::to_string(e.key) + " already appeared on line " +
          std::to_string(it->second));
    }
    entries.push_back(e);
  }
  return entries;
}

IndexedReader::IndexedReader(std::shared_ptr<ByteSource> rec, std::vector<IndexEntry> index,
                             std::string index_name)
    : rec_(std::move(rec)), index_(std::move(index)), index_name_(std::move(index_name)) {
  const std::uint64_t size = rec_->size();
  offsets_.reserve(index_.size());
  for (const auto& e : index_) {
    if (e.offset > size || size - e.offset < 8) {
      fail(index_name_ + ": key " + std::to_string(e.key) + " points at byte offset " +
           std::to_string(e.offset) + ", but " + rec_->name() + " has " + std::to_string(size) +
           " bytes (a record needs at least 8 from its offset)");
    }
    if (!offsets_.emplace(e.key, e.offset).second) {
      fail(index_name_ + ": key " + std::to_string(e.key) + " appears twice");
    }
  }
}

IndexedReader IndexedReader::open(const std::string& rec_path, const std::string& idx_path) {
  std::ifstream in(idx_path, std::ios::binary);
  if (!in) fail("cannot open index '" + idx_path + "': " + std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return IndexedReader(open_file_source(rec_path), parse_index(text, idx_path), idx_path);
}

std::uint64_t IndexedReader::offset(std::uint64_t key) const {
  auto it = offsets_.find(key);
  if (it == offsets_.end()) {
    fail(index_name_ + ": no record with key " + std::to_string(key) + " in the index");
  }
  return it->second;
}

Frame IndexedReader::read(std::uint64_t key) const {
  return read_frame(*rec_, offset(key), static_cast<std::int64_t>(key));
}

FrameHeader IndexedReader::read_header(std::uint64_t key) const {
  return read_frame_header(*rec_, offset(key), static_cast<std::int64_t>(key));
}

struct Writer::Files {
  std::string rec_path, idx_path;
  std::ofstream rec, idx;
  bool closed = false;
};

Writer::Writer(const std::string& rec_path, const std::string& idx_path)
    : files_(std::make_unique<Files>()) {
  files_->rec_path = rec_path;
  files_->idx_path = idx_path;
  files_->rec.open(rec_path, std::ios::binary | std::ios::trunc);
  if (!files_->rec) fail("cannot create '" + rec_path + "': " + std::strerror(errno));
  files_->idx.open(idx_path, std::ios::binary | std::ios::trunc);
  if (!files_->idx) fail("cannot create '" + idx_path + "': " + std::strerror(errno));
}

Writer::~Writer() {
  try {
    close();
  } catch (...) {  // destructors must not throw; call close() to see the error
  }
}

void Writer::write(std::uint64_t key, const std::vector<std::uint8_t>& payload) {
  std::vector<std::uint8_t> bytes;
  append_frame(bytes, payload.data(), payload.size());
  files_->rec.write(reinterpret_cast<const char*>(bytes.data()),
                    static_cast<std::streamsize>(bytes.size()));
  files_->idx << key << '\t' << offset_ << '\n';
  if (!files_->rec || !files_->idx) {
    fail("cannot write record key " + std::to_string(key) + " to '" + files_->rec_path + "'");
  }
  offset_ += bytes.size();
}

void Writer::close() {
  if (files_->closed) return;
  files_->closed = true;
  files_->rec.close();
  files_->idx.close();
  if (files_->rec.fail()) fail("cannot finish writing '" + files_->rec_path + "'");
  if (files_->idx.fail()) fail("cannot finish writing '" + files_->idx_path + "'");
}

}  // namespace flatface::recordio
