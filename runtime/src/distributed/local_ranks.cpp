#include "distributed/local_ranks.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <thread>

#include "flatface/options.hpp"

extern char** environ;

namespace flatface::distributed {

namespace {

std::atomic<int> g_forward_signal{0};
extern "C" void remember_signal(int sig) { g_forward_signal = sig; }

int exit_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw RuntimeError(std::string("--nproc: cannot open a socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw RuntimeError(std::string("--nproc: cannot find a free port: ") + std::strerror(errno));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

int run_local_ranks(const std::string& program, const std::vector<std::string>& args, int nproc,
                    double grace_seconds) {
  if (nproc < 1) throw ConfigError("--nproc must be at least 1, got " + std::to_string(nproc));
  const std::string port = std::to_string(free_local_port());
  std::vector<pid_t> pids;
  for (int r = 0; r < nproc; ++r) {
    const pid_t pid = ::fork();
    if (pid < 0) throw RuntimeError(std::string("--nproc: fork failed: ") + std::strerror(errno));
    if (pid == 0) {
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", port.c_str(), 1);
      ::unsetenv("TORCHELASTIC_USE_AGENT_STORE");
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(program.c_str()));
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execve(program.c_str(), argv.data(), environ);
      std::cerr << "--nproc: cannot start " << program << ": " << std::strerror(errno) << "\n";
      ::_exit(127);
    }
    pids.push_back(pid);
  }

  struct sigaction forward {}, old_int {}, old_term {};
  forward.sa_handler = remember_signal;
  sigemptyset(&forward.sa_mask);
  ::sigaction(SIGINT, &forward, &old_int);
  ::sigaction(SIGTERM, &forward, &old_term);

  using Clock = std::chrono::steady_clock;
  int result = 0;
  int running = nproc;
  bool stopping = false;
  Clock::time_point stop_sent;
  std::vector<bool> done(pids.size(), false);
  while (running > 0) {
    if (int sig = g_forward_signal.exchange(0)) {
      for (std::size_t i = 0; i < pids.size(); ++i)
        if (!done[i]) ::kill(pids[i], sig);
    }
    for (std::size_t i = 0; i < pids.size(); ++i) {
      if (done[i]) continue;
      int status = 0;
      if (::waitpid(pids[i], &status, WNOHANG) != pids[i]) continue;
      done[i] = true;
      --running;
      const int code = exit_status(status);
      if (code != 0 && result == 0) {
        result = code;
        std::cerr << "--nproc: rank " << i << " exited with status " << code
                  << (WIFSIGNALED(status) ? std::string(" (signal ") +
                                                std::to_string(WTERMSIG(status)) + ")"
                                          : std::string())
                  << "; stopping the other ranks\n";
      }
    }
    if (result != 0 && !stopping) {
      stopping = true;
      stop_sent = Clock::now();
      for (std::size_t i = 0; i < pids.size(); ++i)
        if (!done[i]) ::kill(pids[i], SIGTERM);
    }
    if (stopping && Clock::now() - stop_sent > std::chrono::duration<double>(grace_seconds)) {
      for (std::size_t i = 0; i < pids.size(); ++i)
        if (!done[i]) ::kill(pids[i], SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  return result;
}

std::vector<std::string> own_arguments_without(const std::string& option) {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> all;
  std::string arg;
  while (std::getline(f, arg, '\0')) all.push_back(arg);
  std::vector<std::string> out;
  for (std::size_t k = 1; k < all.size(); ++k) {
    if (all[k] == option) {
      ++k;
      continue;
    }
    if (all[k].rfind(option + "=", 0) == 0) continue;
    out.push_back(all[k]);
  }
  return out;
}

std::string rank_device(const std::string& resolved_device, const LaunchEnv& env) {
  if (resolved_device == "cuda") return "cuda:" + std::to_string(env.local_rank);
  return resolved_device;
}

}  // namespace flatface::distributed
