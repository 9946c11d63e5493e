// An image folder as face data sets are often shipped: root/<identity>/<image>.
#pragma once

#include <string>
#include <vector>

namespace flatface {

// Identities are the sub-folders of root that hold at least one image, sorted by name (byte
// order), so identity i gets label i; each one's images (.jpg .jpeg .png .pgm .ppm, any case) are
// sorted by file name. Files directly in root and other files are ignored.
struct ImageFolderListing {
  std::string root;
  std::vector<std::string> identities;           // folder names
  std::vector<std::vector<std::string>> images;  // per identity: full paths
  std::size_t num_images() const;
};

// RuntimeError when root is not a folder or holds no identity with an image.
ImageFolderListing list_image_folder(const std::string& root);

bool has_image_extension(const std::string& path);

}  // namespace flatface
