#include "flatface/formats/image_folder.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "flatface/options.hpp"

namespace flatface {

namespace fs = std::filesystem;

std::size_t ImageFolderListing::num_images() const {
  std::size_t n = 0;
  for (const auto& files : images) n += files.size();
  return n;
}

bool has_image_extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".pgm" || ext == ".ppm";
}

ImageFolderListing list_image_folder(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    throw RuntimeError("image folder '" + root + "' is not a folder");
  }
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (entry.is_directory()) dirs.push_back(entry.path());
  }
  std::sort(dirs.begin(), dirs.end(), [](const fs::path& a, const fs::path& b) {
    return a.filename().string() < b.filename().string();
  });
  ImageFolderListing listing;
  listing.root = root;
  for (const auto& dir : dirs) {
    std::vector<std::string> files;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.is_regular_file() && has_image_extension(entry.path().string())) {
        files.push_back(entry.path().string());
      }
    }
    if (files.empty()) continue;
    std::sort(files.begin(), files.end());
    listing.identities.push_back(dir.filename().string());
    listing.images.push_back(std::move(files));
  }
  if (listing.identities.empty()) {
    throw RuntimeError("image folder '" + root +
                       "' has no identity folders with images (expected root/<identity>/<image>."
                       "jpg|jpeg|png|pgm|ppm)");
  }
  return listing;
}

}  // namespace flatface
