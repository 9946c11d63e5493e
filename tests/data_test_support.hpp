// Helpers of the data-format tests: scratch folders, the reference Python, raw pixel files.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli_test_support.hpp"
#include "flatface/options.hpp"

namespace flatface::testing {

using ScratchDir = TempDir;  // test_support.hpp

inline std::string shared_data(const std::string& rel) {
  return std::string(FLATFACE_SHARED_DIR) + "/data/" + rel;
}

inline std::vector<std::uint8_t> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void spit(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

// Runs a shell command; its exit status (-1 if it could not run).
inline int system_status(const std::string& command) {
  int rc = std::system(command.c_str());
  return rc == -1 ? -1 : WEXITSTATUS(rc);
}

// Runs tests/python/image_reference.py with the given arguments through FLATFACE_PYTHON.
inline int reference_python(const std::string& args) {
  return system_status(std::string(FLATFACE_PYTHON) + " " + FLATFACE_TEST_SOURCE_DIR +
               "/python/image_reference.py " + args);
}

// Runs the flatface CLI; stdout and stderr go to the file `output`.
inline int run_cli_to_file(const std::string& args, const std::string& output) {
  return system_status(std::string(FLATFACE_CLI) + " " + args + " > '" + output + "' 2>&1");
}

}  // namespace flatface::testing
