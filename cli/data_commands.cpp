// flatface data pack | info: face data in the layouts users already have (insightface RecordIO,
// image folders, verification .bin files). Other files add more `data` subcommands to this group.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include "common.hpp"
#include "flatface/formats/image_folder.hpp"
#include "flatface/formats/insightface_rec.hpp"
#include "flatface/formats/verification_bin.hpp"
#include "flatface/image_codec.hpp"

namespace flatface::cli {
namespace {

namespace fs = std::filesystem;

// Counts of things by name ("jpeg", "112x112"), printed as "jpeg 1845, png 3".
using Tally = std::map<std::string, std::size_t>;

std::string tally_text(const Tally& t) {
  std::vector<std::pair<std::string, std::size_t>> rows(t.begin(), t.end());
  std::stable_sort(rows.begin(), rows.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string s;
  for (const auto& [name, n] : rows) s += (s.empty() ? "" : ", ") + name + " " + std::to_string(n);
  return s.empty() ? "-" : s;
}

std::string size_text(int width, int height) {
  return std::to_string(width) + "x" + std::to_string(height);
}

std::string image_text(const ImageInfo& info) {
  return std::string(to_string(info.format)) + (info.channels == 1 ? " grey" : "");
}

std::string per_class_text(const std::vector<std::size_t>& counts) {
  if (counts.empty()) return "-";
  auto [lo, hi] = std::minmax_element(counts.begin(), counts.end());
  std::size_t total = 0;
  for (auto c : counts) total += c;
  std::ostringstream s;
  s.precision(1);
  s << std::fixed << "min " << *lo << ", mean "
    << static_cast<double>(total) / static_cast<double>(counts.size()) << ", max " << *hi;
  return s.str();
}

// ---- data pack ----

struct PackArgs {
  std::string source, out, reencode;
  int quality = 95;
};

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
      std::vector<std::uint8_t> bytes = read_file_bytes(file);
      std::vector<std::uint8_t> payload;
      int width = 0, height = 0;
      try {
        ImageFormat format = sniff_image_format(bytes.data(), bytes.size());
        // Without --reencode, JPEG and PNG are stored byte for byte; PGM/PPM, which insightface's
        // readers do not all take, become lossless PNG.
        std::string target = a.reencode;
        if (target.empty() && (format == ImageFormat::pgm || format == ImageFormat::ppm)) {
          target = "png";
        }
        if (target.empty()) {
          ImageInfo info = probe_image(bytes.data(), bytes.size());
          width = info.width;
          height = info.height;
          payload = std::move(bytes);
          ++copied[to_string(format)];
        } else {
          Image image = decode_image(bytes);
          width = image.width;
          height = image.height;
          payload = target == "jpeg" ? encode_jpeg(image, a.quality) : encode_png(image);
          ++encoded[std::string(to_string(format)) + " -> " + target];
        }
      } catch (const RuntimeError& e) {
        throw RuntimeError(file + ": " + e.what());
      }
      if (!first_size) first_size = {width, height};
      ++sizes[size_text(width, height)];
      recordio::IRHeader h;
      h.label = static_cast<float>(label);
      h.id = key;
      writer.write(key, recordio::pack(h, {}, payload.data(), payload.size()));
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
  // property: "num_classes,height,width" (of the first image when sizes differ).
  std::ofstream property(fs::path(a.out) / "property");
  property << classes << ',' << first_size->second << ',' << first_size->first;
  property.close();
  if (!property) throw RuntimeError("cannot write " + (fs::path(a.out) / "property").string());

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

void info_rec(const std::string& folder, std::size_t limit) {
  InsightfaceRec rec = InsightfaceRec::open(folder);
  const auto& entries = rec.reader().entries();
  std::cout << "insightface RecordIO: " << rec.name() << " (" << rec.reader().source().size()
            << " bytes)\n";
  if (rec.property()) {
    const auto& p = *rec.property();
    std::cout << "  property:  " << p.num_classes << " classes, images "
              << size_text(static_cast<int>(p.width), static_cast<int>(p.height)) << "\n";
  } else {
    std::cout << "  property:  none\n";
  }
  std::uint64_t max_key = 0;
  for (const auto& e : entries) max_key = std::max(max_key, e.key);
  std::cout << "  index:     " << entries.size() << " records, keys up to " << max_key << "\n";
  if (rec.has_header()) {
    std::cout << "  header:    record 0, flag 2 labels: image keys [1, " << rec.image_key_end()
              << "), identity keys [" << rec.image_key_end() << ", " << rec.identity_key_end()
              << ")\n";
  } else {
    std::cout << "  header:    none (every indexed record is an image)\n";
  }
  const std::size_t n = limit ? std::min(limit, rec.size()) : rec.size();
  Tally label_layout, formats, sizes;
  std::map<std::int64_t, std::size_t> per_label;
  std::size_t multipart = 0;
  for (std::size_t i = 0; i < n; ++i) {
    RecImage r = rec.read(i);
    ++per_label[r.label];
    ++label_layout[r.header.header.flag == 0
                       ? std::string("flag 0 (label in the header)")
                       : "flag " + std::to_string(r.header.header.flag) +
                             " (float labels after the header, first is the class)"];
    try {
      ImageInfo info = probe_image(r.image_data(), r.image_size());
      ++formats[image_text(info)];
      ++sizes[size_text(info.width, info.height)];
    } catch (const RuntimeError&) {
      ++formats["unreadable"];
    }
    if (rec.reader().read_header(r.key).cflag != 0) ++multipart;
  }
  std::vector<std::size_t> counts;
  for (const auto& [label, c] : per_label) counts.push_back(c);
  std::cout << "  images:    " << rec.size()
            << (n < rec.size() ? " (examined " + std::to_string(n) + ")" : "")
            << "\n  classes:   " << rec.num_classes() << " (" << per_label.size()
            << " labels seen, " << (per_label.empty() ? 0 : per_label.begin()->first) << ".."
            << (per_label.empty() ? 0 : per_label.rbegin()->first) << ")\n"
            << "  per class: " << per_class_text(counts) << "\n"
            << "  labels:    " << tally_text(label_layout) << "\n"
            << "  payloads:  " << tally_text(formats) << "\n"
            << "  sizes:     " << tally_text(sizes) << "\n"
            << "  multi-part records: " << multipart << "\n";
  if (rec.has_header()) {
    std::cout << "  identity records: " << rec.identity_ranges().size() << "\n";
  }
}

void info_folder(const std::string& root) {
  ImageFolderListing listing = list_image_folder(root);
  Tally formats, sizes;
  std::vector<std::size_t> counts;
  for (const auto& files : listing.images) {
    counts.push_back(files.size());
    for (const auto& f : files) {
      std::vector<std::uint8_t> bytes = read_file_bytes(f);
      try {
        ImageInfo info = probe_image(bytes.data(), bytes.size());
        ++formats[image_text(info)];
        ++sizes[size_text(info.width, info.height)];
      } catch (const RuntimeError& e) {
        ++formats["unreadable"];
        std::cerr << "warning: " << f << ": " << e.what() << '\n';
      }
    }
  }
  std::cout << "image folder: " << root << "\n"
            << "  identities: " << listing.identities.size() << " (" << listing.identities.front()
            << " .. " << listing.identities.back() << ", labels in name order)\n"
            << "  images:     " << listing.num_images() << "\n"
            << "  per class:  " << per_class_text(counts) << "\n"
            << "  formats:    " << tally_text(formats) << "\n"
            << "  sizes:      " << tally_text(sizes) << "\n";
}

void info_bin(const std::string& path) {
  VerificationBin bin = read_verification_bin(path);
  std::size_t same = std::count(bin.issame.begin(), bin.issame.end(), true);
  Tally formats, sizes;
  for (const auto& img : bin.images) {
    try {
      ImageInfo info = probe_image(img.data(), img.size());
      ++formats[image_text(info)];
      ++sizes[size_text(info.width, info.height)];
    } catch (const RuntimeError&) {
      ++formats["unreadable"];
    }
  }
  std::cout << "verification .bin: " << path << "\n"
            << "  format: " << bin.format << "\n"
            << "  pairs:  " << bin.issame.size() << " (" << same << " same, "
            << bin.issame.size() - same << " different)\n"
            << "  images: " << bin.images.size() << "; " << tally_text(formats) << "\n"
            << "  sizes:  " << tally_text(sizes) << "\n";
}

int info(const std::string& path, std::size_t limit) {
  fs::path p(path);
  const std::string ext = p.extension().string();
  if (fs::is_regular_file(p) && ext == ".bin") {
    info_bin(path);
  } else if (fs::is_regular_file(p) &&
             (ext == ".rec" || ext == ".idx" || p.filename() == "property")) {
    info_rec(p.parent_path().empty() ? "." : p.parent_path().string(), limit);
  } else if (fs::is_directory(p) && fs::exists(p / "train.rec")) {
    info_rec(path, limit);
  } else if (fs::is_directory(p)) {
    info_folder(path);
  } else {
    throw ConfigError("data info: '" + path +
                      "' is neither a .bin file, an insightface folder (train.rec) nor an image "
                      "folder");
  }
  return 0;
}

}  // namespace

void add_data_commands(CLI::App& app, Globals&, Command& chosen) {
  auto* data = app.add_subcommand("data", "Inspect and convert face data sets");
  data->require_subcommand(1);

  static PackArgs pack_args;
  auto* pk = data->add_subcommand(
      "pack",
      "Pack an image folder (root/<identity>/<image>) into insightface train.rec/.idx/property");
  pk->add_option("source", pack_args.source, "Image folder")
      ->required()
      ->check(CLI::ExistingDirectory);
  pk->add_option("out", pack_args.out, "Output folder")->required();
  pk->add_option("--reencode", pack_args.reencode,
                 "Re-encode every image as jpeg or png (default: JPEG/PNG stored as is, "
                 "PGM/PPM as PNG)")
      ->check(CLI::IsMember({"jpeg", "png"}));
  pk->add_option("--quality", pack_args.quality, "JPEG quality for --reencode jpeg")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  pk->callback([&chosen] { chosen = [] { return pack(pack_args); }; });

  static std::string info_path;
  static std::size_t info_limit = 0;
  auto* in = data->add_subcommand(
      "info", "Describe a data set: insightface folder, image folder or verification .bin");
  in->add_option("path", info_path, "Folder or file")->required()->check(CLI::ExistingPath);
  in->add_option("--limit", info_limit, "Examine only the first N image records (0: all)")
      ->capture_default_str();
  in->callback([&chosen] { chosen = [] { return info(info_path, info_limit); }; });
}

}  // namespace flatface::cli
