// flatface run --workers N: the parent starts N `flatface run` processes of the same grid (each
// with its device and its threads, its output in a log file), reads their events from a pipe, and
// shows one line per worker, then one summary and the report.
#include "run_workers.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "report_tables.hpp"
#include "results/result_store.hpp"
#include "grid/run_claim.hpp"
#include "training/trainer.hpp"

namespace flatface::cli {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::atomic<int> g_interrupts{0};

extern "C" void on_parent_interrupt(int) {
  g_interrupts.fetch_add(1);
}

struct Worker {
  int index = 0;  // 1-based
  std::string device;
  pid_t pid = -1;
  int fd = -1;          // its event pipe; -1 once closed
  std::string pending;  // bytes of an unfinished line
  std::string log;
  bool exited = false;
  int exit_code = -1, signal = 0;
  // What the display shows.
  std::string state = "starting";
  std::string tag, label, run_id;
  std::int64_t epoch = 0, epochs = 0, step = 0, steps = 0;
  double images_per_second = 0, eta = 0;
  // Its summary.
  long trained = 0;  // runs it completed (its `end` events: a killed worker sends no summary)
  double train_s = 0, eval_s = 0, save_s = 0, claim_s = 0;
};

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, '\t')) out.push_back(field);
  return out;
}

double to_number(const std::string& s) {
  return std::strtod(s.c_str(), nullptr);
}

// "w1 cpu     [3/21] ArcFace seed=1: epoch 2/8 step 10/24, 820 img/s, ETA 1m10s"
std::string describe(const Worker& w) {
  char head[64];
  std::snprintf(head, sizeof head, "w%-2d %-7s ", w.index, w.device.c_str());
  if (w.state != "training") return head + w.state;
  if (w.epoch == 0) return head + w.tag + " " + w.label + ": starting";
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s %s: epoch %lld/%lld step %lld/%lld, %.0f img/s, ETA %s",
                w.tag.c_str(), w.label.c_str(), static_cast<long long>(w.epoch),
                static_cast<long long>(w.epochs), static_cast<long long>(w.step),
                static_cast<long long>(w.steps), w.images_per_second,
                format_duration(w.eta).c_str());
  return std::string(head) + buf;
}

// The lines below the log: one per worker, redrawn in place on a terminal.
class Display {
 public:
  explicit Display(std::vector<Worker>& workers)
      : workers_(workers), terminal_(::isatty(STDOUT_FILENO) == 1) {}

  // A line that stays (a finished run, a takeover): above the workers' lines.
  void log(const std::string& line) {
    clear();
    spdlog::info("{}", line);
    std::fflush(stderr);
    draw();
  }
  // Without a terminal, a worker's line is printed when it starts a run or an epoch.
  void changed(const Worker& w) {
    if (!terminal_) spdlog::info("{}", describe(w));
  }
  void refresh() {
    if (!terminal_ || Clock::now() - last_ < std::chrono::milliseconds(250)) return;
    clear();
    draw();
  }
  void finish() { clear(); }

 private:
  void clear() {
    if (!terminal_ || drawn_ == 0) return;
    std::fprintf(stdout, "\x1b[%dF\x1b[J", drawn_);
    std::fflush(stdout);
    drawn_ = 0;
  }
  void draw() {
    if (!terminal_) return;
    for (const auto& w : workers_) std::fprintf(stdout, "%s\n", describe(w).c_str());
    std::fflush(stdout);
    drawn_ = static_cast<int>(workers_.size());
    last_ = Clock::now();
  }

  std::vector<Worker>& workers_;
  bool terminal_;
  int drawn_ = 0;
  Clock::time_point last_{};
};

// The devices given out in turn: --devices, else the experiment's; a plain "cuda" (or "auto")
// with several GPUs spreads the workers over them.
std::vector<std::string> worker_devices(const RunArgs& args, const Experiment& e, int workers) {
  std::vector<std::string> devices = args.devices;
  if (devices.empty() && !args.device.empty()) devices.push_back(args.device);
  for (const auto& d : devices) resolve_device(d);  // a clear error before any worker starts
  std::vector<std::string> out;
  if (devices.empty()) {
    const std::string d = resolve_device(e.device);
    const auto gpus = d == "cuda" ? static_cast<int>(torch::cuda::device_count()) : 0;
    for (int k = 0; k < workers; ++k)
      out.push_back(gpus > 1 ? "cuda:" + std::to_string(k % gpus) : d);
  } else {
    for (int k = 0; k < workers; ++k)
      out.push_back(devices[static_cast<std::size_t>(k) % devices.size()]);
  }
  return out;
}

// A worker's devices, "cuda:2+cuda:3" or "cpu+cpu", one per rank.
std::vector<std::string> rank_devices(const std::string& worker_device) {
  std::vector<std::string> out;
  std::size_t at = 0;
  for (std::size_t plus; (plus = worker_device.find('+', at)) != std::string::npos; at = plus + 1)
    out.push_back(worker_device.substr(at, plus - at));
  out.push_back(worker_device.substr(at));
  return out;
}

// What a worker of several ranks is told: "cuda" (rank r takes cuda:r of the GPUs it is shown,
// CUDA_VISIBLE_DEVICES) or "cpu"; a worker of one device, that device.
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

// CUDA_VISIBLE_DEVICES for a worker of several GPUs ("2,3" for cuda:2+cuda:3), else "".
std::string visible_gpus(const std::string& worker_device) {
  const auto devices = rank_devices(worker_device);
  if (devices.size() == 1 || rank_device_kind(worker_device) != "cuda") return "";
  std::string out;
  for (const auto& d : devices) {
    const std::size_t colon = d.find(':');
    out += (out.empty() ? "" : ",") + (colon == std::string::npos ? std::string("0") : d.substr(colon + 1));
  }
  return out;
}

std::vector<std::string> worker_argv(const Globals& g, const RunArgs& args,
                                     const std::string& device, int threads) {
  std::vector<std::string> a{"flatface", "run", args.experiment.file};
  for (const auto& o : args.experiment.overrides) a.insert(a.end(), {"--set", o});
  for (const auto& o : args.only) a.insert(a.end(), {"--only", o});
  if (args.retry_failed) a.push_back("--retry-failed");
  if (args.stop_after_steps >= 0)
    a.insert(a.end(), {"--stop-after-steps", std::to_string(args.stop_after_steps)});
  char stale[32];
  std::snprintf(stale, sizeof stale, "%.17g", args.stale_after);
  a.insert(a.end(), {"--stale-after", stale, "--no-report", "--device", rank_device_kind(device),
                     "--threads", std::to_string(threads), "--progress-fd", "3", "--log-level",
                     g.log_level});
  if (args.nproc > 1) a.insert(a.end(), {"--nproc", std::to_string(args.nproc)});
  for (const auto& p : g.plugin_paths) a.insert(a.end(), {"--plugin-path", p});
  return a;
}

// Forks and execs a worker: its events on fd 3, stdout and stderr into `log`, in a process group
// of its own (the parent alone receives the terminal's Ctrl-C and passes it on once), and told
// to save and stop (SIGINT) if the parent dies.
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

std::string last_lines(const std::string& file, std::size_t n) {
  std::ifstream in(file);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::string out;
  for (std::size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i)
    out += "  " + lines[i] + "\n";
  return out;
}

void handle_event(Worker& w, const std::vector<std::string>& f, Display& display) {
  if (f.empty()) return;
  const std::string& kind = f[0];
  const std::string who = "w" + std::to_string(w.index) + ": ";
  if (kind == "start" && f.size() >= 5) {
    w.state = "training";
    w.tag = "[" + f[1] + "/" + f[2] + "]";
    w.run_id = f[3];
    w.label = f[4];
    w.epoch = w.step = 0;
    display.changed(w);
  } else if (kind == "step" && f.size() >= 8 && f[1] == w.run_id) {
    const auto epoch = static_cast<std::int64_t>(to_number(f[2]));
    const bool new_epoch = epoch != w.epoch;
    w.epoch = epoch;
    w.epochs = static_cast<std::int64_t>(to_number(f[3]));
    w.step = static_cast<std::int64_t>(to_number(f[4]));
    w.steps = static_cast<std::int64_t>(to_number(f[5]));
    w.images_per_second = to_number(f[6]);
    w.eta = to_number(f[7]);
    if (new_epoch) display.changed(w);
  } else if (kind == "end" && f.size() >= 4) {
    w.state = "looking for a run";
    const auto status = parse_run_status(f[2]);
    w.trained += status == RunStatus::complete;
    if (status != RunStatus::skipped) display.log(who + f[3]);
  } else if (kind == "note" && f.size() >= 2) {
    if (f[1].rfind("waiting", 0) == 0) w.state = "waiting for runs held by other processes";
    display.log(who + f[1]);
  } else if (kind == "summary" && f.size() >= 7) {
    w.train_s = to_number(f[3]);
    w.eval_s = to_number(f[4]);
    w.save_s = to_number(f[5]);
    w.claim_s = to_number(f[6]);
  }
}

// Reads what is there; false at end of file.
bool read_events(Worker& w, Display& display) {
  char buf[4096];
  ssize_t n = ::read(w.fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) return false;
  w.pending.append(buf, static_cast<std::size_t>(n));
  for (auto nl = w.pending.find('\n'); nl != std::string::npos; nl = w.pending.find('\n')) {
    handle_event(w, split_tabs(w.pending.substr(0, nl)), display);
    w.pending.erase(0, nl + 1);
  }
  return true;
}

// How many of `runs` have a result file that says complete, and failed.
std::pair<std::size_t, std::size_t> count_results(const Experiment& e,
                                                  const std::vector<RunSpec>& runs) {
  std::size_t complete = 0, failed = 0;
  for (const auto& r : runs) {
    const std::string path = result_path(e, r);
    if (!fs::exists(path)) continue;
    const auto status = read_run_record(path).status;
    complete += status == RunState::complete;
    failed += status == RunState::failed;
  }
  return {complete, failed};
}

std::vector<Worker> start_workers(const Globals& g, const RunArgs& args,
                                  const std::vector<std::string>& devices, int threads,
                                  const fs::path& logs) {
  const std::string host = this_process().host;
  std::vector<Worker> workers(devices.size());
  for (std::size_t k = 0; k < devices.size(); ++k) {
    Worker& w = workers[k];
    w.index = static_cast<int>(k + 1);
    w.device = devices[k];
    w.log = (logs / ("worker-" + host + "-" + std::to_string(k + 1) + ".log")).string();
    int pipe_fds[2];
    try {
      if (::pipe2(pipe_fds, O_CLOEXEC) != 0)
        throw RuntimeError(std::string("cannot create a pipe for a worker: ") +
                           std::strerror(errno));
      try {
        w.pid = spawn(worker_argv(g, args, w.device, threads), pipe_fds[1], w.log,
                      visible_gpus(w.device));
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

// Notes a worker's exit, if it has exited.
void reap(Worker& w, Display& display) {
  int status = 0;
  if (w.exited || ::waitpid(w.pid, &status, WNOHANG) != w.pid) return;
  w.exited = true;
  if (WIFEXITED(status)) {
    w.exit_code = WEXITSTATUS(status);
    w.state = w.exit_code == 0 ? "finished" : "exited with code " + std::to_string(w.exit_code);
  } else if (WIFSIGNALED(status)) {
    w.signal = WTERMSIG(status);
    w.state = "killed by signal " + std::to_string(w.signal);
    display.log("w" + std::to_string(w.index) + " (pid " + std::to_string(w.pid) +
                ") was killed by signal " + std::to_string(w.signal) +
                "; another worker or the next `flatface run` finishes its run");
  }
}

// Shows the workers' events until every worker has exited; passes Ctrl-C on, once per press
// (each worker saves its run and stops; a second press makes them quit at once, as for a single
// process). Returns how many presses there were.
int supervise(std::vector<Worker>& workers) {
  Display display(workers);
  int forwarded = 0;
  for (;;) {
    if (g_interrupts.load() > forwarded) {
      ++forwarded;
      for (const auto& w : workers)
        if (!w.exited) ::kill(w.pid, SIGINT);
      display.log(forwarded == 1 ? "interrupted: every worker saves its run and stops (Ctrl-C "
                                   "again to quit at once)"
                                 : "quitting at once");
    }
    std::vector<pollfd> fds;
    for (const auto& w : workers)
      if (w.fd >= 0) fds.push_back({w.fd, POLLIN, 0});
    if (fds.empty()) ::usleep(100 * 1000);
    if (!fds.empty() && ::poll(fds.data(), fds.size(), 200) > 0) {
      for (const auto& p : fds) {
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
        auto& w = *std::find_if(workers.begin(), workers.end(),
                                [&](const Worker& x) { return x.fd == p.fd; });
        if (!read_events(w, display)) {
          ::close(w.fd);
          w.fd = -1;
        }
      }
    }
    bool all_done = true;
    for (auto& w : workers) {
      reap(w, display);
      all_done = all_done && w.exited && w.fd < 0;
    }
    if (all_done) break;
    display.refresh();
  }
  display.finish();
  return forwarded;
}

}  // namespace

int run_workers(const Globals& g, const RunArgs& args, const Experiment& e,
                const std::vector<RunSpec>& runs) {
  int n = args.workers > 0 ? args.workers : static_cast<int>(args.devices.size());
  if (static_cast<std::size_t>(n) > runs.size()) {
    spdlog::info("{} runs selected: starting {} workers, not {}", runs.size(), runs.size(), n);
    n = static_cast<int>(runs.size());
  }
  // With --nproc N each worker owns N devices in turn ("cuda:0+cuda:1") and starts N ranks.
  const int nproc = std::max(1, args.nproc);
  const auto given = worker_devices(args, e, n * nproc);
  std::vector<std::string> devices(static_cast<std::size_t>(n));
  for (std::size_t k = 0; k < given.size(); ++k) {
    std::string& d = devices[k / static_cast<std::size_t>(nproc)];
    d += (d.empty() ? "" : "+") + given[k];
  }
  int threads = g.threads > 0 ? g.threads : static_cast<int>(e.threads);
  if (threads <= 0) threads = std::max(1, available_cores() / (n * nproc));
  const auto [complete_before, failed_before] = count_results(e, runs);
  const fs::path logs = fs::path(e.output) / "logs";
  fs::create_directories(logs);
  std::string device_list;
  for (const auto& d : devices) device_list += (device_list.empty() ? "" : ",") + d;
  spdlog::info(
      "{}: {} runs ({} complete, {} failed) on {} workers ({}; {} threads each) -> {}; "
      "worker logs in {}",
      e.name, runs.size(), complete_before, failed_before, n, device_list, threads, e.output,
      logs.string());

  std::signal(SIGINT, on_parent_interrupt);
  std::signal(SIGTERM, on_parent_interrupt);
  std::vector<Worker> workers = start_workers(g, args, devices, threads, logs);
  const int interrupts = supervise(workers);

  // Configuration errors show up in every worker the same way: show one.
  for (const auto& w : workers)
    if (w.exit_code == 2) {
      std::cerr << "error: worker " << w.index << " stopped on a usage or configuration error ("
                << w.log << "):\n"
                << last_lines(w.log, 5);
      return 2;
    }

  long trained = 0;
  double train_s = 0, eval_s = 0, save_s = 0, claim_s = 0;
  for (const auto& w : workers) {
    trained += w.trained;
    train_s += w.train_s;
    eval_s += w.eval_s;
    save_s += w.save_s;
    claim_s += w.claim_s;
  }
  // Counted from the files: every worker sees (and counts) a failed run.
  const auto [complete, failed] = count_results(e, runs);
  spdlog::info(
      "{}: {} trained by {} workers, {} already complete, {} failed, {} unfinished; "
      "results in {}",
      e.name, trained, n, complete_before, failed, runs.size() - complete - failed, e.output);
  const double wall = std::chrono::duration<double>(Clock::now() - program_start()).count();
  const double worker_time = wall * n;
  const double other = worker_time - train_s - eval_s;
  spdlog::info(
      "{}: wall {:.1f}s x {} workers = training steps {:.1f}s + evaluation {:.1f}s + "
      "other {:.1f}s ({:.1f}% overhead, waiting included; saving results and checkpoints "
      "{:.1f}s, claiming runs {:.2f}s)",
      e.name, wall, n, train_s, eval_s, other, worker_time > 0 ? 100 * other / worker_time : 0,
      save_s, claim_s);
  const bool interrupted =
      interrupts > 0 || std::any_of(workers.begin(), workers.end(),
                                    [](const Worker& w) { return w.exit_code == 130; });
  if (interrupted) {
    std::cerr << "\ninterrupted: every run is complete or saved at its last step. Resume with:\n"
              << "  flatface run " << e.file;
    for (const auto& o : args.experiment.overrides) std::cerr << " --set '" << o << "'";
    std::cerr << " --workers " << n << '\n';
    return 130;
  }
  if (!args.no_report) {
    using namespace flatface::reports;
    auto agg = aggregate_runs(load_results({e.output}), Selection::final_epoch);
    std::cout << '\n' << render_report(agg, Format::markdown) << std::flush;
  }
  const bool crashed = std::any_of(workers.begin(), workers.end(), [](const Worker& w) {
    return w.signal != 0 || (w.exit_code != 0 && w.exit_code != 1);
  });
  if (failed > 0) return 1;
  if (crashed && complete < runs.size()) return 1;
  return 0;
}

}  // namespace flatface::cli
