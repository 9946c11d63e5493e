// What any test may share: text checks (`contains`, `with`), scratch folders (`TempDir`, removed
// when it goes; `fresh_dir`, kept for the test to inspect), a file's text (`text_of`), and the
// message of the typed error a callable throws (`config_error`, `runtime_error_of`). The tiny grid
// that the end-to-end tests train is in tiny_grid.hpp; running the `flatface` executable is in
// cli_test_support.hpp.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

#include "flatface/options.hpp"

namespace flatface::testing {

namespace fs = std::filesystem;

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// `text` with its first `from` replaced by `to`; a missing `from` is a mistake in the test.
inline std::string with(std::string text, const std::string& from, const std::string& to) {
  auto at = text.find(from);
  if (at == std::string::npos) throw std::logic_error("test text lacks: " + from);
  return text.replace(at, from.size(), to);
}

// A fresh folder of its own under the system temp dir, removed when the object goes.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& prefix) {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() / ("flatface-" + prefix + "-" + std::to_string(::getpid()) +
                                        "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string str() const { return path.string(); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
  std::string write(const std::string& name, const std::string& text) const {
    auto file = (path / name).string();
    std::ofstream(file) << text;
    return file;
  }
};

// The empty folder `name` under the system temp dir, left in place for the test to look into.
// The same name gives the same folder within one process; the process id keeps test programs
// running at once (CI, several checkouts) apart, so that none resumes from another's files.
inline fs::path fresh_dir(const std::string& name) {
  fs::path dir =
      fs::temp_directory_path() / ("flatface_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// The whole file, as it is on disk; "" when it cannot be read (a log not written yet, say).
inline std::string text_of(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The message of the `Error` that `f` throws ("" if it throws none).
template <typename Error, typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

template <typename F>
std::string config_error(F f) {
  return error_of<flatface::ConfigError>(f);
}

template <typename F>
std::string runtime_error_of(F f) {
  return error_of<flatface::RuntimeError>(f);
}

}  // namespace flatface::testing
