// Embeddings of a verification set as an HDF5 file, for analysis outside flatface:
//   /embeddings  float32 [2N,D]  (pair i = rows 2i and 2i+1, L2-normalised)
//   /issame      uint8 [N]
//   /magnitude   float32 [2N]  (‖f(x)‖ of each image before normalisation: MagFace's quality
//                               score; written when given)
//   root attributes: every `attributes` entry as a string
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

namespace flatface {

// Writes <path>.tmp and renames it over <path>. Throws RuntimeError naming the file.
void write_embedding_file(const std::string& path, const at::Tensor& embeddings,
                          const std::vector<bool>& issame,
                          const std::map<std::string, std::string>& attributes,
                          const at::Tensor& magnitudes = {});

}  // namespace flatface
