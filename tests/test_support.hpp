// What any test may share: text checks (`contains`, `with`), scratch folders (`TempDir`, removed
// when it goes; `fresh_dir`, kept for the test to inspect), a file's text (`text_of`), and the
// message of the typed error a callable throws (`config_error`, `runtime_error_of`), and a claim
// written as another machine's process would (`write_foreign_claim`). The tiny grid
// that the end-to-end tests train is in tiny_grid.hpp; running the `flatface` executable is in
// cli_test_support.hpp.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
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

// A run's claim as a process on another machine ("elsewhere") writes it: generation `generation`,
// process `pid`, a heartbeat every `heartbeat` seconds, the last one `age` seconds ago (the file's
// modification time).
struct ForeignClaim {
  int pid = 4242;
  int generation = 1;
  int heartbeat = 30;
  double age = 0;
};

inline void write_foreign_claim(const fs::path& output, const std::string& run,
                                const ForeignClaim& c) {
  fs::create_directories(output / "claims");
  const fs::path path = output / "claims" / (run + "." + std::to_string(c.generation) + ".claim");
  std::ofstream(path) << "run = " << run << "\nstate = held\nhost = elsewhere\npid = " << c.pid
                      << "\nheartbeat = " << c.heartbeat << "\n";
  const auto then = std::chrono::system_clock::now() -
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(
                        std::chrono::duration<double>(c.age));
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(then.time_since_epoch()).count();
  timespec times[2];
  times[0].tv_sec = times[1].tv_sec = static_cast<time_t>(ns / 1000000000);
  times[0].tv_nsec = times[1].tv_nsec = static_cast<long>(ns % 1000000000);
  ::utimensat(AT_FDCWD, path.c_str(), times, 0);
}

}  // namespace flatface::testing
