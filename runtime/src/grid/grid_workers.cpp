#include "grid/grid_workers.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "flatface/options.hpp"
#include "grid/run_claim.hpp"
#include "results/result_store.hpp"
#include "training/trainer.hpp"

namespace flatface {

namespace {

namespace fs = std::filesystem;

// A worker's devices, "cuda:2+cuda:3" or "cpu+cpu", one per rank.
std::vector<std::string> rank_devices(const std::string& worker_device) {
  std::vector<std::string> out;
  std::size_t at = 0;
  for (std::size_t plus; (plus = worker_device.find('+', at)) != std::string::npos; at = plus + 1)
    out.push_back(worker_device.substr(at, plus - at));
  out.push_back(worker_device.substr(at));
  return out;
}

// Forks and execs a worker: its events on fd 3, stdout and stderr into `log`, in a process group
// of its own, and told to save and stop (SIGINT) if the parent dies.
pid_t spawn(const std::vector<std::string>& argv, int events_fd, const std::string& log,
            const std::string& cuda_visible) {
  static const std::string exe = fs::read_symlink("/proc/self/exe").string();
  int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0)
    throw RuntimeError(log + ": cannot open the worker's log: " + std::strerror(errno));
  std::vector<char*> cargv;
  for (const auto& s : argv) cargv.push_back(const_cast<char*>(s.c_str()));
  cargv.push_back(nullptr);
  // The environment, prepared before fork: CUDA_VISIBLE_DEVICES for a worker of several GPUs.
  std::vector<std::string> env;
  for (char** v = environ; *v; ++v)
    if (cuda_visible.empty() || std::string(*v).rfind("CUDA_VISIBLE_DEVICES=", 0) != 0)
      env.emplace_back(*v);
  if (!cuda_visible.empty()) env.push_back("CUDA_VISIBLE_DEVICES=" + cuda_visible);
  std::vector<char*> cenv;
  for (auto& v : env) cenv.push_back(v.data());
  cenv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    throw RuntimeError(std::string("cannot start a worker process: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGINT);
    if (::getppid() != parent) ::_exit(130);
    const int events = ::fcntl(events_fd, F_DUPFD_CLOEXEC, 10);
    const int out = ::fcntl(log_fd, F_DUPFD_CLOEXEC, 10);
    const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (events < 0 || out < 0 || null < 0) ::_exit(127);
    ::dup2(null, STDIN_FILENO);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    ::dup2(events, 3);
    ::execve(exe.c_str(), cargv.data(), cenv.data());
    std::fprintf(stderr, "cannot run %s: %s\n", exe.c_str(), std::strerror(errno));
    ::_exit(127);
  }
  ::close(log_fd);
  return pid;
}

// Reads what is there and tells the watcher of each whole line's event; false at end of file.
bool read_events(WorkerProcess& w, WorkerWatcher& watcher) {
  char buf[4096];
  ssize_t n = ::read(w.fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) return false;
  w.pending.append(buf, static_cast<std::size_t>(n));
  for (auto nl = w.pending.find('\n'); nl != std::string::npos; nl = w.pending.find('\n')) {
    const auto event = parse_worker_event(w.pending.substr(0, nl));
    w.pending.erase(0, nl + 1);
    if (!event) continue;
    if (event->kind == WorkerEventKind::end && event->status == RunStatus::complete) ++w.completed;
    if (event->kind == WorkerEventKind::summary) w.summary = event->summary;
    watcher.event(w, *event);
  }
  return true;
}

// Notes a worker's exit, if it has exited.
void reap(WorkerProcess& w, WorkerWatcher& watcher) {
  int status = 0;
  if (w.exited || ::waitpid(w.pid, &status, WNOHANG) != w.pid) return;
  w.exited = true;
  if (WIFEXITED(status)) w.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) w.signal = WTERMSIG(status);
  watcher.exited(w);
}

}  // namespace

std::vector<std::string> worker_devices(const std::vector<std::string>& requested,
                                        const std::string& device, int workers, int nproc) {
  for (const auto& d : requested) resolve_device(d);  // a clear error before any worker starts
  const int count = workers * nproc;
  std::vector<std::string> given;
  if (requested.empty()) {
    const std::string d = resolve_device(device);
    const auto gpus = d == "cuda" ? static_cast<int>(torch::cuda::device_count()) : 0;
    for (int k = 0; k < count; ++k)
      given.push_back(gpus > 1 ? "cuda:" + std::to_string(k % gpus) : d);
  } else {
    for (int k = 0; k < count; ++k)
      given.push_back(requested[static_cast<std::size_t>(k) % requested.size()]);
  }
  // With nproc > 1 each worker owns nproc devices in turn ("cuda:0+cuda:1").
  std::vector<std::string> out(static_cast<std::size_t>(workers));
  for (std::size_t k = 0; k < given.size(); ++k) {
    std::string& d = out[k / static_cast<std::size_t>(nproc)];
    d += (d.empty() ? "" : "+") + given[k];
  }
  return out;
}

std::string rank_device_kind(const std::string& worker_device) {
  const auto devices = rank_devices(worker_device);
  if (devices.size() == 1) return devices.front();
  for (const auto& d : devices) {
    if (d.rfind("cuda", 0) != 0 && d != "cpu")
      throw ConfigError("--nproc: a worker's ranks need cpu or cuda:N devices, not '" + d + "'");
    if ((d == "cpu") != (devices.front() == "cpu"))
      throw ConfigError("--nproc: the ranks of a worker share one kind of device (" +
                        worker_device + ")");
  }
  return devices.front() == "cpu" ? "cpu" : "cuda";
}

std::string visible_gpus(const std::string& worker_device) {
  const auto devices = rank_devices(worker_device);
  if (devices.size() == 1 || rank_device_kind(worker_device) != "cuda") return "";
  std::string out;
  for (const auto& d : devices) {
    const std::size_t colon = d.find(':');
    out += (out.empty() ? "" : ",") +
           (colon == std::string::npos ? std::string("0") : d.substr(colon + 1));
  }
  return out;
}

std::vector<WorkerProcess> start_workers(const std::vector<std::string>& devices,
                                         const std::string& logs, const WorkerCommand& command) {
  const std::string host = this_process().host;
  std::vector<WorkerProcess> workers(devices.size());
  for (std::size_t k = 0; k < devices.size(); ++k) {
    WorkerProcess& w = workers[k];
    w.index = static_cast<int>(k + 1);
    w.device = devices[k];
    w.log = (fs::path(logs) / ("worker-" + host + "-" + std::to_string(k + 1) + ".log")).string();
    int pipe_fds[2];
    try {
      if (::pipe2(pipe_fds, O_CLOEXEC) != 0)
        throw RuntimeError(std::string("cannot create a pipe for a worker: ") +
                           std::strerror(errno));
      try {
        w.pid =
            spawn(command(rank_device_kind(w.device)), pipe_fds[1], w.log, visible_gpus(w.device));
      } catch (...) {
        ::close(pipe_fds[0]);
        ::close(pipe_fds[1]);
        throw;
      }
    } catch (...) {
      for (auto& started : workers)
        if (started.pid > 0) ::kill(started.pid, SIGINT);  // they save and stop
      throw;
    }
    ::close(pipe_fds[1]);
    w.fd = pipe_fds[0];
  }
  return workers;
}

int supervise_workers(std::vector<WorkerProcess>& workers, const std::atomic<int>& interrupts,
                      WorkerWatcher& watcher) {
  int forwarded = 0;
  for (;;) {
    if (interrupts.load() > forwarded) {
      ++forwarded;
      for (const auto& w : workers)
        if (!w.exited) ::kill(w.pid, SIGINT);
      watcher.interrupted(forwarded);
    }
    std::vector<pollfd> fds;
    for (const auto& w : workers)
      if (w.fd >= 0) fds.push_back({w.fd, POLLIN, 0});
    if (fds.empty()) ::usleep(100 * 1000);
    if (!fds.empty() && ::poll(fds.data(), fds.size(), 200) > 0) {
      for (const auto& p : fds) {
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
        auto& w = *std::find_if(workers.begin(), workers.end(),
                                [&](const WorkerProcess& x) { return x.fd == p.fd; });
        if (!read_events(w, watcher)) {
          ::close(w.fd);
          w.fd = -1;
        }
      }
    }
    bool all_done = true;
    for (auto& w : workers) {
      reap(w, watcher);
      all_done = all_done && w.exited && w.fd < 0;
    }
    if (all_done) break;
    watcher.idle();
  }
  return forwarded;
}

WorkersOutcome workers_outcome(const std::vector<WorkerProcess>& workers, int interrupts) {
  WorkersOutcome o;
  o.interrupted = interrupts > 0;
  for (const auto& w : workers) {
    // Configuration errors show up in every worker the same way: one is enough.
    if (w.exit_code == 2 && !o.configuration_error) o.configuration_error = &w;
    o.interrupted = o.interrupted || w.exit_code == 130;
    o.crashed = o.crashed || w.signal != 0 || (w.exit_code != 0 && w.exit_code != 1);
    o.totals.trained += w.completed;
    o.totals.train_seconds += w.summary.train_seconds;
    o.totals.eval_seconds += w.summary.eval_seconds;
    o.totals.save_seconds += w.summary.save_seconds;
    o.totals.claim_seconds += w.summary.claim_seconds;
  }
  return o;
}

ResultCounts count_results(const Experiment& e, const std::vector<RunSpec>& runs) {
  ResultCounts c;
  for (const auto& r : runs) {
    const std::string path = result_path(e, r);
    if (!fs::exists(path)) continue;
    const RunState state = read_run_record(path).status;
    c.complete += state == RunState::complete;
    c.failed += state == RunState::failed;
  }
  return c;
}

int workers_exit_code(const WorkersOutcome& outcome, const ResultCounts& results,
                      std::size_t runs) {
  if (results.failed > 0) return 1;
  if (outcome.crashed && results.complete < runs) return 1;
  return 0;
}

}  // namespace flatface
