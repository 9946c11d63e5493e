#include "evaluation/embedding_file.hpp"

#include <H5Cpp.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "flatface/options.hpp"

namespace flatface {

void write_embedding_file(const std::string& path, const at::Tensor& embeddings,
                          const std::vector<bool>& issame,
                          const std::map<std::string, std::string>& attributes,
                          const at::Tensor& magnitudes) {
  if (embeddings.dim() != 2 || embeddings.size(0) != 2 * static_cast<std::int64_t>(issame.size()))
    throw RuntimeError(path + ": embeddings must be [2N,D] for " + std::to_string(issame.size()) +
                       " pairs");
  if (magnitudes.defined() && (magnitudes.dim() != 1 || magnitudes.size(0) != embeddings.size(0)))
    throw RuntimeError(path + ": magnitudes must be [2N] for " + std::to_string(issame.size()) +
                       " pairs");
  at::Tensor rows = embeddings.to(at::kCPU, at::kFloat).contiguous();
  std::vector<std::uint8_t> same(issame.begin(), issame.end());
  const std::string tmp = path + ".tmp";
  try {
    H5::Exception::dontPrint();
    H5::H5File file(tmp, H5F_ACC_TRUNC);
    const hsize_t shape[2] = {static_cast<hsize_t>(rows.size(0)),
                              static_cast<hsize_t>(rows.size(1))};
    file.createDataSet("embeddings", H5::PredType::IEEE_F32LE, H5::DataSpace(2, shape))
        .write(rows.data_ptr<float>(), H5::PredType::NATIVE_FLOAT);
    if (magnitudes.defined()) {
      at::Tensor norms = magnitudes.to(at::kCPU, at::kFloat).contiguous();
      const hsize_t count[1] = {static_cast<hsize_t>(norms.size(0))};
      file.createDataSet("magnitude", H5::PredType::IEEE_F32LE, H5::DataSpace(1, count))
          .write(norms.data_ptr<float>(), H5::PredType::NATIVE_FLOAT);
    }
    const hsize_t pairs[1] = {static_cast<hsize_t>(same.size())};
    file.createDataSet("issame", H5::PredType::STD_U8LE, H5::DataSpace(1, pairs))
        .write(same.data(), H5::PredType::NATIVE_UINT8);
    H5::StrType text(H5::PredType::C_S1, H5T_VARIABLE);
    for (const auto& [key, value] : attributes)
      file.createAttribute(key, text, H5::DataSpace(H5S_SCALAR)).write(text, value);
    file.close();
  } catch (const H5::Exception& e) {
    std::filesystem::remove(tmp);
    throw RuntimeError(path + ": cannot write embeddings: " + e.getDetailMsg());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw RuntimeError(path + ": cannot rename " + tmp + " into place: " + ec.message());
}

}  // namespace flatface
