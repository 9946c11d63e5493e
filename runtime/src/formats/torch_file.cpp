#include "formats/torch_file.hpp"

#include <ATen/core/Tensor.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/unpickler.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "flatface/options.hpp"
#include "formats/ordered_dict_pickle.hpp"

namespace flatface {

namespace {

using ReadRecord = std::function<at::DataPtr(const std::string&)>;

// One pickle of a torch.save file; `read_record` supplies the bytes of the storage named by a
// persistent id. Storages land on the CPU whatever device the file names.
c10::IValue unpickle(std::string pickle, const ReadRecord& read_record,
                     std::optional<std::uint64_t> version = std::nullopt) {
  if (auto batched = single_items_as_batches(pickle)) pickle = std::move(*batched);
  if (auto plain = ordered_dict_as_dict(pickle)) {
    pickle = std::move(*plain);
  } else if (auto objects = objects_as_dicts(pickle)) {
    pickle = std::move(*objects);
  }
  std::size_t offset = 0;
  auto read = [&](char* buffer, std::size_t n) {
    const std::size_t count = std::min(n, pickle.size() - offset);
    std::memcpy(buffer, pickle.data() + offset, count);
    offset += count;
    return count;
  };
  torch::jit::Unpickler unpickler(read, nullptr, nullptr, read_record, c10::Device(c10::kCPU));
  if (version) unpickler.set_version(*version);
  return unpickler.parse_ivalue();
}

c10::IValue read_zip(const std::string& path) {
  caffe2::serialize::PyTorchStreamReader reader(path);
  const auto [pickle_data, pickle_size] = reader.getRecord("data.pkl");
  return unpickle(
      std::string(static_cast<const char*>(pickle_data.get()), pickle_size),
      [&](const std::string& name) { return std::get<0>(reader.getRecord("data/" + name)); },
      reader.version());
}

// torch/serialization.py's _legacy_save writes five pickles (magic number, protocol version,
// sys_info, the object, the keys of its storages in the order written), then for each key an
// int64 element count and the storage's raw bytes. The object's persistent ids
// ('storage', type, key, location, numel, view) give each storage's size.
constexpr const char* kLegacyPickles[] = {"magic number", "protocol version", "sys_info", "object",
                                          "storage keys"};
constexpr std::int64_t kLegacyProtocolVersion = 1001;
// LONG1, 10 bytes, little endian: the magic number 0x1950a86a20f9469cfc6c.
const std::string kLegacyMagic("\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 12);

bool is_legacy(const std::string& head) {
  return head.size() >= 2 + kLegacyMagic.size() && static_cast<unsigned char>(head[0]) == 0x80 &&
         head.compare(2, kLegacyMagic.size(), kLegacyMagic) == 0;
}

std::string read_bytes(std::ifstream& in, std::uint64_t offset, std::uint64_t count) {
  std::string bytes(count, '\0');
  in.clear();
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(bytes.data(), static_cast<std::streamsize>(count));
  bytes.resize(static_cast<std::size_t>(in.gcount()));
  return bytes;
}

RuntimeError legacy_error(const std::string& path, const std::string& why) {
  return RuntimeError(path + ": legacy torch.save file: " + why);
}

// The five pickles, found by reading a growing prefix of the file: they are small next to the
// storages after them. Pickle k is head[bounds[k], bounds[k + 1]).
struct LegacyPickles {
  std::string head;
  std::array<std::size_t, 6> bounds{};
  std::string piece(std::size_t k) const {
    return head.substr(bounds[k], bounds[k + 1] - bounds[k]);
  }
};

LegacyPickles read_pickles(std::ifstream& in, std::uint64_t file_size, const std::string& path) {
  LegacyPickles pickles;
  for (std::uint64_t want = 1 << 20;; want *= 2) {
    pickles.head = read_bytes(in, 0, std::min(want, file_size));
    std::size_t k = 0;
    for (; k < 5; ++k) {
      const auto end = pickle_end(pickles.head, pickles.bounds[k]);
      if (!end) break;
      pickles.bounds[k + 1] = *end;
    }
    if (k == 5) return pickles;
    if (pickles.head.size() >= file_size) {
      throw legacy_error(path, std::string("its ") + kLegacyPickles[k] +
                                   " pickle is truncated or uses an opcode torch.save does not "
                                   "write");
    }
  }
}

// Checks the protocol version and byte order; returns the storage keys in the order written.
std::vector<std::string> read_header(const LegacyPickles& pickles, const std::string& path) {
  const ReadRecord no_storages = [&](const std::string& key) -> at::DataPtr {
    throw legacy_error(path, "storage '" + key + "' outside the object pickle");
  };
  const c10::IValue version = unpickle(pickles.piece(1), no_storages);
  if (!version.isInt() || version.toInt() != kLegacyProtocolVersion) {
    throw legacy_error(
        path, "unknown protocol version (expected " + std::to_string(kLegacyProtocolVersion) + ")");
  }
  const c10::IValue sys_info = unpickle(pickles.piece(2), no_storages);
  if (sys_info.isGenericDict()) {
    const auto info = sys_info.toGenericDict();
    const auto little = info.find(std::string("little_endian"));
    if (little != info.end() && little->value().isBool() && !little->value().toBool()) {
      throw legacy_error(path, "written on a big-endian machine; not supported");
    }
  }
  const c10::IValue key_list = unpickle(pickles.piece(4), no_storages);
  std::vector<std::string> keys;
  if (key_list.isList()) {
    for (const auto& key : key_list.toListRef()) {
      if (key.isString()) keys.push_back(key.toStringRef());
    }
  }
  if (!key_list.isList() || keys.size() != key_list.toListRef().size()) {
    throw legacy_error(path, "its storage keys are not a list of strings");
  }
  return keys;
}

struct StorageSize {
  std::uint64_t bytes = 0, element = 1;
};

// The deleter of the first pass's DataPtrs, which hold no data.
void keep(void*) {}

// First pass over the object: the size of every storage its tensors use, which the unpickler
// derives from the persistent id's element count and type. No data is read: each DataPtr is
// empty, and its context is the 1-based index of the read_record call that made it.
std::map<std::string, StorageSize> storage_sizes(const std::string& object) {
  std::vector<std::string> requested;
  const ReadRecord size_only = [&](const std::string& key) {
    requested.push_back(key);
    return at::DataPtr(nullptr, reinterpret_cast<void*>(requested.size()), &keep,
                       c10::Device(c10::kCPU));
  };
  std::map<std::string, StorageSize> sizes;
  unpickle(object, size_only).visit([&](const c10::IValue& v) {
    if (v.isTensor()) {
      const at::Tensor& t = v.toTensor();
      const auto index = reinterpret_cast<std::uintptr_t>(t.storage().data_ptr().get_context());
      if (index >= 1 && index <= requested.size()) {
        sizes[requested[index - 1]] = {t.storage().nbytes(),
                                       static_cast<std::uint64_t>(t.element_size())};
      }
    }
    return false;
  });
  return sizes;
}

struct StorageRecord {
  std::uint64_t offset = 0, bytes = 0;
};

// Where each storage's bytes are: after the pickles, in the order of the keys, each behind its
// element count (int64, little endian), which must agree with the object's tensors.
std::map<std::string, StorageRecord> locate_storages(
    std::ifstream& in, std::uint64_t offset, std::uint64_t file_size,
    const std::vector<std::string>& keys, const std::map<std::string, StorageSize>& sizes,
    const std::string& path) {
  std::map<std::string, StorageRecord> records;
  for (const auto& key : keys) {
    const std::string count_bytes = read_bytes(in, offset, 8);
    if (count_bytes.size() != 8)
      throw RuntimeError(path + ": truncated: storage '" + key + "' is missing");
    std::uint64_t count = 0;
    for (int i = 7; i >= 0; --i) count = (count << 8) | static_cast<unsigned char>(count_bytes[i]);
    const auto size = sizes.find(key);
    const StorageSize known = size == sizes.end() ? StorageSize{} : size->second;
    if (count != known.bytes / known.element) {
      throw legacy_error(path, "storage '" + key + "' holds " + std::to_string(count) +
                                   " elements where its tensors need " +
                                   std::to_string(known.bytes / known.element));
    }
    const StorageRecord r{offset + 8, known.bytes};
    if (r.bytes > file_size - std::min(file_size, r.offset)) {
      throw RuntimeError(path + ": truncated: storage '" + key + "' needs " +
                         std::to_string(r.bytes) + " bytes at offset " + std::to_string(r.offset) +
                         " of a " + std::to_string(file_size) + "-byte file");
    }
    records[key] = r;
    offset = r.offset + r.bytes;
  }
  for (const auto& entry : sizes) {
    if (!records.count(entry.first)) {
      throw legacy_error(path, "storage '" + entry.first + "' is not in its list of storages");
    }
  }
  return records;
}

c10::IValue read_legacy(const std::string& path) {
  const std::uint64_t file_size = std::filesystem::file_size(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RuntimeError(path + ": cannot open");
  const LegacyPickles pickles = read_pickles(in, file_size, path);
  const std::vector<std::string> keys = read_header(pickles, path);
  const std::string object = pickles.piece(3);
  const auto records =
      locate_storages(in, pickles.bounds[5], file_size, keys, storage_sizes(object), path);
  // Second pass: the same object with the storages' bytes.
  return unpickle(object, [&](const std::string& key) {
    const StorageRecord& r = records.at(key);
    at::DataPtr data = c10::GetCPUAllocator()->allocate(r.bytes);
    in.clear();
    in.seekg(static_cast<std::streamoff>(r.offset));
    in.read(static_cast<char*>(data.get()), static_cast<std::streamsize>(r.bytes));
    if (!in) throw RuntimeError(path + ": cannot read storage '" + key + "'");
    return data;
  });
}

}  // namespace

c10::IValue read_torch_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in || !std::filesystem::is_regular_file(path)) throw RuntimeError(path + ": no such file");
  std::string head(2 + kLegacyMagic.size(), '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<std::size_t>(in.gcount()));
  in.close();
  try {
    if (head.compare(0, 4, "PK\x03\x04") == 0) return read_zip(path);
    if (is_legacy(head)) return read_legacy(path);
  } catch (const c10::Error& err) {
    throw RuntimeError(path +
                       ": not a torch.save file of tensors: " + err.what_without_backtrace());
  }
  throw RuntimeError(path +
                     ": not a torch.save file (neither its zip format nor the legacy format)");
}

}  // namespace flatface
