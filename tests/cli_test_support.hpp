// What the tests that drive the `flatface` executable share: running a shell command or the
// built `flatface`, with its exit status and output. Brings test_support.hpp's helpers along.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "test_support.hpp"

namespace flatface::testing {

struct Result {
  int code = -1;    // the exit status; -1 when killed by a signal
  std::string out;  // stdout and stderr together
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

}  // namespace flatface::testing
