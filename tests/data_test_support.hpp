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

#include "flatface/options.hpp"

namespace flatface::testing {

// A fresh folder under the system temp dir, removed when the object goes.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag) {
    static std::atomic<int> counter{0};
    path_ =
        std::filesystem::temp_directory_path() /
        ("flatface-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

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
inline int shell(const std::string& command) {
  int rc = std::system(command.c_str());
  return rc == -1 ? -1 : WEXITSTATUS(rc);
}

// Runs tests/python/image_reference.py with the given arguments through /usr/bin/python3.
inline int reference_python(const std::string& args) {
  return shell(std::string(FLATFACE_PYTHON) + " " + FLATFACE_TEST_SOURCE_DIR +
               "/python/image_reference.py " + args);
}

// Runs the flatface CLI; stdout and stderr go to `output`.
inline int run_cli(const std::string& args, const std::string& output) {
  return shell(std::string(FLATFACE_CLI) + " " + args + " > '" + output + "' 2>&1");
}

inline std::string text_of(const std::string& path) {
  auto bytes = slurp(path);
  return std::string(bytes.begin(), bytes.end());
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The message of the flatface::RuntimeError that `f` throws ("" if it throws none).
template <typename F>
std::string runtime_error_of(F f) {
  try {
    f();
  } catch (const flatface::RuntimeError& e) {
    return e.what();
  }
  return "";
}

}  // namespace flatface::testing
