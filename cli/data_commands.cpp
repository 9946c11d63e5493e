// flatface data pack | info. `info` reads through the dataset plugin that recognises the path, so
// a format built out of tree is described like the built-in ones; `pack` writes insightface
// RecordIO from an image folder, walking the folder itself since it stores each file's encoded
// bytes as they are (a plugin hands out decoded pixels). `data pairs` lives in data_pairs.cpp.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include "common.hpp"
#include "data/dataset_recognition.hpp"
#include "flatface/formats/image_folder.hpp"
#include "flatface/formats/recordio.hpp"
#include "flatface/image_codec.hpp"
#include "flatface/image_tally.hpp"
#include "plugin_host/factory.hpp"

namespace flatface::cli {
namespace {

namespace fs = std::filesystem;

std::string size_text(int width, int height) {
  return std::to_string(width) + "x" + std::to_string(height);
}

// ---- data pack ----

struct PackArgs {
  std::string source, out, reencode;
  int quality = 95;
};
PackArgs pack_args;

// One image file as `pack` stores it. Without --reencode, JPEG and PNG are stored byte for byte;
// PGM/PPM, which insightface's readers do not all take, become lossless PNG. `copied` and
// `encoded` count what happened, by format.
struct PackedImage {
  std::vector<std::uint8_t> payload;
  int width = 0, height = 0;
};

PackedImage packed_image(const std::string& file, const PackArgs& a, Tally& copied,
                         Tally& encoded) {
  std::vector<std::uint8_t> bytes = read_file_bytes(file);
  PackedImage out;
  try {
    ImageFormat format = sniff_image_format(bytes.data(), bytes.size());
    std::string target = a.reencode;
    if (target.empty() && (format == ImageFormat::pgm || format == ImageFormat::ppm)) {
      target = "png";
    }
    if (target.empty()) {
      ImageInfo info = probe_image(bytes.data(), bytes.size());
      out.width = info.width;
      out.height = info.height;
      out.payload = std::move(bytes);
      ++copied[to_string(format)];
    } else {
      Image image = decode_image(bytes);
      out.width = image.width;
      out.height = image.height;
      out.payload = target == "jpeg" ? encode_jpeg(image, a.quality) : encode_png(image);
      ++encoded[std::string(to_string(format)) + " -> " + target];
    }
  } catch (const RuntimeError& e) {
    throw RuntimeError(file + ": " + e.what());
  }
  return out;
}

// property: "num_classes,height,width" (of the first image when sizes differ).
void write_property(const std::string& out, std::size_t classes, std::pair<int, int> size) {
  const fs::path path = fs::path(out) / "property";
  std::ofstream property(path);
  property << classes << ',' << size.second << ',' << size.first;
  property.close();
  if (!property) throw RuntimeError("cannot write " + path.string());
}

int pack(const PackArgs& a) {
  ImageFolderListing listing = list_image_folder(a.source);
  fs::create_directories(a.out);
  const std::size_t images = listing.num_images(), classes = listing.identities.size();
  const std::uint64_t image_end = images + 1, identity_end = image_end + classes;

  recordio::Writer writer((fs::path(a.out) / "train.rec").string(),
                          (fs::path(a.out) / "train.idx").string());
  // Record 0: the insightface header, labels (image key end, identity key end).
  recordio::IRHeader header;
  writer.write(
      0, recordio::pack(header, {static_cast<float>(image_end), static_cast<float>(identity_end)},
                        nullptr, 0));
  Tally copied, encoded, sizes;
  std::optional<std::pair<int, int>> first_size;
  std::uint64_t key = 1;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (std::size_t label = 0; label < classes; ++label) {
    const std::uint64_t first = key;
    for (const auto& file : listing.images[label]) {
      const PackedImage image = packed_image(file, a, copied, encoded);
      if (!first_size) first_size = {image.width, image.height};
      ++sizes[size_text(image.width, image.height)];
      recordio::IRHeader h;
      h.label = static_cast<float>(label);
      h.id = key;
      writer.write(key, recordio::pack(h, {}, image.payload.data(), image.payload.size()));
      ++key;
    }
    ranges.emplace_back(first, key);
  }
  // Identity records: labels (first image key, end image key) per identity.
  for (const auto& [first, end] : ranges) {
    recordio::IRHeader h;
    h.id = key;
    writer.write(
        key, recordio::pack(h, {static_cast<float>(first), static_cast<float>(end)}, nullptr, 0));
    ++key;
  }
  writer.close();
  write_property(a.out, classes, *first_size);

  std::cout << "packed " << images << " images of " << classes << " identities from " << a.source
            << " into " << a.out << " (train.rec, train.idx, property)\n"
            << "  stored as is: " << tally_text(copied) << "\n"
            << "  re-encoded:   " << tally_text(encoded) << "\n"
            << "  image sizes:  " << tally_text(sizes) << "\n";
  if (sizes.size() > 1) {
    std::cout << "  note: sizes differ; property records the first image's size\n";
  }
  return 0;
}

// ---- data info ----

// Images in a role's output: its first image's stored size.
std::string first_image_text(const Image& image) {
  return size_text(image.width, image.height) +
         " (as stored; the host resizes to the backbone's input)";
}

// The details() lines, indented under the role's heading.
void print_details(const std::string& details) {
  std::istringstream lines(details);
  for (std::string line; std::getline(lines, line);) std::cout << "  " << line << "\n";
}

struct InfoArgs {
  std::string path;
  std::string plugin;  // --dataset
  std::size_t limit = 0;
};
InfoArgs info_args;

// Every role a dataset plugin reads PATH in (training set, verification set): what the opened set
// says of itself, its size, and the plugin's details.
int info(const Globals& g, const std::string& path, const std::string& plugin, std::size_t limit) {
  auto reg = open_registry(g);
  std::vector<DataRole> roles;
  if (plugin.empty()) {
    bool train = false, verification = false;
    for (const auto& reader : recognisers_of(*reg, path)) {
      train = train || reader.roles.train;
      verification = verification || reader.roles.verification;
    }
    if (train) roles.push_back(DataRole::train);
    if (verification) roles.push_back(DataRole::verification);
    if (roles.empty()) {
      throw ConfigError("'" + path +
                        "': no dataset plugin recognises it; what each one reads from a path:" +
                        what_plugins_read(*reg));
    }
  } else {
    const auto& e = reg->get(PluginKind::dataset, plugin).entry;
    if (e.train_set) roles.push_back(DataRole::train);
    if (e.verification_set) roles.push_back(DataRole::verification);
  }
  // A data set has no backbone here: procedural data is drawn at the default 112 side.
  const std::int64_t input_size = 112;
  for (DataRole role : roles) {
    PluginRef ref = recognised_ref(*reg, path, role, plugin);
    std::cout << path << ": dataset plugin '" << ref.plugin << "', " << to_string(role) << "\n";
    if (role == DataRole::train) {
      auto set = make_train_set(*reg, ref, input_size, 0);
      std::cout << "  " << set->describe() << "\n  training set: " << set->size() << " images, "
                << set->num_classes() << " classes\n";
      if (set->size() > 0)
        std::cout << "  first image:  " << first_image_text(set->get(0).image) << "\n";
      print_details(set->details(limit));
    } else {
      auto set = make_verification_set(*reg, ref, input_size, 0);
      const auto& issame = set->issame();
      const auto same = static_cast<std::size_t>(std::count(issame.begin(), issame.end(), true));
      std::cout << "  " << set->describe() << "\n  verification set: " << set->num_pairs()
                << " pairs (" << same << " same, " << issame.size() - same << " different)\n";
      if (set->num_pairs() > 0)
        std::cout << "  first image:  " << first_image_text(set->image(0)) << "\n";
      print_details(set->details(limit));
    }
  }
  return 0;
}

}  // namespace

void data_pack_options(CLI::App& cmd) {
  cmd.add_option("source", pack_args.source, "Image folder")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd.add_option("out", pack_args.out, "Output folder")->required();
  cmd.add_option("--reencode", pack_args.reencode,
                 "Re-encode every image as jpeg or png (default: JPEG/PNG stored as is, "
                 "PGM/PPM as PNG)")
      ->check(CLI::IsMember({"jpeg", "png"}));
  cmd.add_option("--quality", pack_args.quality, "JPEG quality for --reencode jpeg")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
}

int data_pack_command(const Globals&) {
  return pack(pack_args);
}

void data_info_options(CLI::App& cmd) {
  cmd.add_option("path", info_args.path, "Folder or file")->required()->check(CLI::ExistingPath);
  cmd.add_option("--dataset", info_args.plugin,
                 "The dataset plugin to read it with (default: the one that recognises it)");
  cmd.add_option("--limit", info_args.limit, "Examine only the first N image records (0: all)")
      ->capture_default_str();
}

int data_info_command(const Globals& g) {
  return info(g, info_args.path, info_args.plugin, info_args.limit);
}

}  // namespace flatface::cli
