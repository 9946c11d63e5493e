// What the tests that drive the `flatface` executable share: running a command, a scratch folder
// of their own, and small text helpers.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace flatface::testing {

namespace fs = std::filesystem;

struct Result {
  int code = -1;        // the exit status; -1 when killed by a signal
  std::string out;      // stdout and stderr together
};

// Runs `cmd` through the shell.
inline Result shell(const std::string& cmd) {
  Result r;
  FILE* pipe = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) r.out.append(buf, n);
  const int status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Runs `flatface ARGS`, with `env` (VAR=value ...) in front.
inline Result run_cli(const std::string& args, const std::string& env = "") {
  return shell(env + " '" + std::string(FLATFACE_CLI) + "' " + args);
}

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
    path = fs::temp_directory_path() /
           ("flatface-" + prefix + "-" + std::to_string(::getpid()) + "-" +
            std::to_string(counter++));
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

}  // namespace flatface::testing
