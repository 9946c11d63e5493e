#include "flatface/formats/verification_bin.hpp"

#include <cstdio>
#include <fstream>
#include <iterator>

#include "flatface/options.hpp"
#include "formats/pickle.hpp"

namespace flatface {
namespace {

using pickle::Object;

std::vector<std::uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RuntimeError(path + ": cannot open the verification file");
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  if (in.bad()) throw RuntimeError(path + ": read error");
  return bytes;
}

std::string kind_of(const Object& o) {
  switch (o.type) {
    case Object::Type::bytes:
      return o.python2_str ? "Python 2 str" : "bytes";
    case Object::Type::array:
      return "numpy " + o.dtype + " arrays";
    case Object::Type::boolean:
      return "bools";
    case Object::Type::integer:
      return "ints";
    default:
      return "other";
  }
}

std::vector<std::uint8_t> image_bytes(const std::string& path, const Object& o, std::size_t i) {
  bool ok = (o.type == Object::Type::bytes) ||
            (o.type == Object::Type::array && o.built && o.dtype == "uint8");
  if (!ok)
    throw RuntimeError(path + ": image " + std::to_string(i) +
                       " is not bytes or a numpy uint8 array (found " + kind_of(o) + ")");
  return std::vector<std::uint8_t>(o.data.begin(), o.data.end());
}

bool flag(const std::string& path, const Object& o, std::size_t i) {
  if ((o.type == Object::Type::boolean || o.type == Object::Type::integer) &&
      (o.integer == 0 || o.integer == 1))
    return o.integer == 1;
  throw RuntimeError(path + ": issame flag " + std::to_string(i) + " is not a bool");
}

}  // namespace

VerificationBin read_verification_bin(const std::string& path) {
  std::vector<std::uint8_t> raw = read_all(path);
  return parse_verification_bin(raw.data(), raw.size(), path);
}

VerificationBin parse_verification_bin(const std::uint8_t* bytes, std::size_t size,
                                       const std::string& path) {
  pickle::LoadResult loaded = pickle::load(bytes, size, path);
  const Object& top = *loaded.value;
  if ((top.type != Object::Type::tuple && top.type != Object::Type::list) || top.items.size() != 2)
    throw RuntimeError(path + ": expected a pickled pair (images, issame), found something else");
  const Object& images = *top.items[0];
  const Object& flags = *top.items[1];
  if (images.type != Object::Type::list && images.type != Object::Type::tuple)
    throw RuntimeError(path + ": the first item must be a list of encoded images");

  VerificationBin bin;
  bin.images.reserve(images.items.size());
  for (std::size_t i = 0; i < images.items.size(); ++i)
    bin.images.push_back(image_bytes(path, *images.items[i], i));

  std::string flags_kind;
  if (flags.type == Object::Type::array && flags.built) {  // numpy bool (or 0/1 uint8) array
    for (std::size_t i = 0; i < flags.data.size(); ++i) {
      auto v = static_cast<unsigned char>(flags.data[i]);
      if (v > 1) throw RuntimeError(path + ": issame flag " + std::to_string(i) + " is not 0/1");
      bin.issame.push_back(v == 1);
    }
    flags_kind = "a numpy " + flags.dtype + " array";
  } else if (flags.type == Object::Type::list || flags.type == Object::Type::tuple) {
    for (std::size_t i = 0; i < flags.items.size(); ++i)
      bin.issame.push_back(flag(path, *flags.items[i], i));
    flags_kind = flags.items.empty() ? "an empty list" : kind_of(*flags.items[0]);
  } else {
    throw RuntimeError(path + ": the second item must be a list or array of issame flags");
  }

  if (2 * bin.issame.size() != bin.images.size())
    throw RuntimeError(path + ": " + std::to_string(bin.images.size()) + " images but " +
                       std::to_string(bin.issame.size()) +
                       " issame flags (expected two images per pair)");
  bin.format = "pickle protocol " + std::to_string(loaded.protocol) + ", images as " +
               (images.items.empty() ? std::string("an empty list") : kind_of(*images.items[0])) +
               ", flags as " + flags_kind;
  return bin;
}

void write_verification_bin(const std::string& path, const VerificationBin& bin) {
  if (2 * bin.issame.size() != bin.images.size())
    throw RuntimeError(path + ": " + std::to_string(bin.images.size()) + " images but " +
                       std::to_string(bin.issame.size()) + " issame flags (expected two per pair)");
  std::vector<std::uint8_t> bytes = pickle::dump_bytes_and_bools(bin.images, bin.issame);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw RuntimeError(tmp + ": cannot create file");
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) throw RuntimeError(tmp + ": write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw RuntimeError(path + ": cannot rename " + tmp + " to it");
  }
}

}  // namespace flatface
