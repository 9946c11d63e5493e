// libFuzzer target for the safe pickle reader: the bytes are loaded as a pickle and, when that
// succeeds, interpreted as an insightface verification file. Anything but flatface::RuntimeError
// escaping (or a sanitizer report, a leak from a reference cycle, a stack overflow) is a finding.
#include <cstddef>
#include <cstdint>

#include "flatface/formats/verification_bin.hpp"
#include "flatface/options.hpp"
#include "formats/pickle.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    flatface::pickle::LoadResult r = flatface::pickle::load(data, size, "fuzz.pkl");
    (void)r;
    flatface::VerificationBin bin = flatface::parse_verification_bin(data, size, "fuzz.pkl");
    (void)bin;
  } catch (const flatface::RuntimeError&) {
  }
  return 0;
}
