// insightface verification files (`lfw.bin`, `cfp_fp.bin`, ...): a pickle of
// `(list of 2N encoded images, list of N bools)`; pair i is images 2i and 2i+1.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flatface {

struct VerificationBin {
  std::vector<std::vector<std::uint8_t>> images;  // encoded (JPEG/PNG) bytes, as stored
  std::vector<bool> issame;
  // How the file stores them, e.g. "pickle protocol 2, images as Python 2 str, flags as bools".
  std::string format;
};

// Reads with libflatface's safe pickle subset reader (nothing is executed); accepts images as
// bytes, Python 2 str or numpy uint8 arrays and flags as bools, 0/1 ints or a numpy bool array.
// Throws RuntimeError naming the file when the layout differs or 2 * len(issame) != len(images).
VerificationBin read_verification_bin(const std::string& path);
// The same from bytes in memory; `source` names them in errors.
VerificationBin parse_verification_bin(const std::uint8_t* bytes, std::size_t size,
                                       const std::string& source);

// Writes a protocol-2 pickle that insightface reads with `pickle.load(f, encoding='bytes')` (and
// Python 2's `pickle.load(f)`). Written to a temporary name first, then renamed.
void write_verification_bin(const std::string& path, const VerificationBin& bin);

}  // namespace flatface
