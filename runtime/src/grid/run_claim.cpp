// Claim files (the protocol is described in run_claim.hpp).
#include "grid/run_claim.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

#include "flatface/options.hpp"

namespace flatface {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Adds the time a scope takes to a counter shared with the heartbeat thread.
class Timed {
 public:
  explicit Timed(std::atomic<std::int64_t>& sum) : sum_(sum), start_(Clock::now()) {}
  ~Timed() {
    sum_ += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start_).count();
  }
  Timed(const Timed&) = delete;
  Timed& operator=(const Timed&) = delete;

 private:
  std::atomic<std::int64_t>& sum_;
  Clock::time_point start_;
};

double wall_now() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double mtime_of(const struct stat& st) {
  return static_cast<double>(st.st_mtim.tv_sec) + 1e-9 * static_cast<double>(st.st_mtim.tv_nsec);
}

std::string first_line_of(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses):
// [0] is the state, [19] the start time in clock ticks since boot.
std::vector<std::string> proc_stat_fields(const std::string& pid) {
  std::string text = read_text("/proc/" + pid + "/stat");
  std::vector<std::string> fields;
  auto close = text.rfind(')');
  if (close == std::string::npos) return fields;
  std::istringstream in(text.substr(close + 1));
  for (std::string f; in >> f;) fields.push_back(f);
  return fields;
}

std::string slurm_job() {
  const char* array_job = std::getenv("SLURM_ARRAY_JOB_ID");
  const char* task = std::getenv("SLURM_ARRAY_TASK_ID");
  if (array_job && task) return std::string(array_job) + "_" + task;
  const char* job = std::getenv("SLURM_JOB_ID");
  return job ? job : "";
}

std::string claim_text(const ClaimInfo& c) {
  std::ostringstream out;
  out << "run = " << c.run_id << "\nstate = " << (c.released ? "released" : "held")
      << "\nhost = " << c.host << "\npid = " << c.pid << "\nstarted = " << c.started
      << "\njob = " << c.job << "\nheartbeat = " << c.heartbeat_interval
      << "\nboot_id = " << c.boot_id << "\npid_namespace = " << c.pid_namespace
      << "\npid_start = " << c.pid_start << '\n';
  return out.str();
}

// The claim file of `run_id` at `generation`; in `folder`.
std::string claim_path(const std::string& folder, const std::string& run_id,
                       std::int64_t generation) {
  return (fs::path(folder) / (run_id + "." + std::to_string(generation) + ".claim")).string();
}

// "<run_id>.<generation>.claim" -> (run_id, generation); generation 0 when it is not one.
std::pair<std::string, std::int64_t> parse_claim_name(const std::string& name) {
  const std::string suffix = ".claim";
  if (name.size() <= suffix.size() || name[0] == '.' ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return {"", 0};
  std::string stem = name.substr(0, name.size() - suffix.size());
  auto dot = stem.rfind('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == stem.size()) return {"", 0};
  std::int64_t generation = 0;
  for (char ch : stem.substr(dot + 1)) {
    if (ch < '0' || ch > '9') return {"", 0};
    generation = generation * 10 + (ch - '0');
  }
  return {stem.substr(0, dot), generation};
}

// Creates `path` exclusively with `text`. False when it exists already; throws on other errors.
bool create_exclusively(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == EEXIST) return false;
    throw RuntimeError(path + ": cannot create the claim file: " + std::strerror(errno));
  }
  const char* p = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // a short claim file still claims: readers tolerate missing fields
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  return true;
}

ClaimInfo parse_claim(const std::string& path, const std::string& text) {
  ClaimInfo c;
  c.path = path;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    auto eq = line.find(" = ");
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq), value = line.substr(eq + 3);
    if (key == "state") c.released = value == "released";
    if (key == "host") c.host = value;
    if (key == "pid") c.pid = std::atoll(value.c_str());
    if (key == "started") c.started = value;
    if (key == "job") c.job = value;
    if (key == "heartbeat") c.heartbeat_interval = std::atof(value.c_str());
    if (key == "boot_id") c.boot_id = value;
    if (key == "pid_namespace") c.pid_namespace = value;
    if (key == "pid_start") c.pid_start = value;
  }
  return c;
}

}  // namespace

std::string ClaimInfo::holder() const {
  std::string who = (host.empty() ? "?" : host) + ":" + std::to_string(pid);
  if (!job.empty()) who += " (slurm " + job + ")";
  return who;
}

ClaimInfo this_process() {
  static const ClaimInfo me = [] {
    ClaimInfo c;
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "unknown-host");
    c.host = host;
    c.pid = ::getpid();
    c.job = slurm_job();
    c.boot_id = first_line_of("/proc/sys/kernel/random/boot_id");
    std::error_code ec;
    c.pid_namespace = fs::read_symlink("/proc/self/ns/pid", ec).string();
    auto fields = proc_stat_fields("self");
    if (fields.size() > 19) c.pid_start = fields[19];
    return c;
  }();
  ClaimInfo c = me;
  c.pid = ::getpid();  // a forked child is another process
  auto fields = proc_stat_fields("self");
  if (fields.size() > 19) c.pid_start = fields[19];
  return c;
}

ClaimFolder::ClaimFolder(const std::string& output, double stale_after_seconds)
    : folder_((fs::path(output) / "claims").string()),
      stale_after_(stale_after_seconds),
      nanoseconds_(std::make_shared<std::atomic<std::int64_t>>(0)) {
  if (!(stale_after_seconds > 0))
    throw ConfigError("--stale-after must be a positive number of seconds, got " +
                      std::to_string(stale_after_seconds));
}

double ClaimFolder::seconds_spent() const {
  return 1e-9 * static_cast<double>(nanoseconds_->load());
}

// The file system stamps a probe file with its own clock; on NFS that is the server's, the same
// clock that stamps every heartbeat.
double ClaimFolder::filesystem_clock_offset() const {
  // Clocks drift apart slowly: measured again every ten minutes.
  if (clock_offset_ && wall_now() - clock_measured_ < 600) return *clock_offset_;
  static std::atomic<int> counter{0};
  const ClaimInfo me = this_process();
  const std::string probe =
      (fs::path(folder_) /
       (".clock." + me.host + "." + std::to_string(me.pid) + "." + std::to_string(counter++)))
          .string();
  double offset = 0;
  const double before = wall_now();
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd >= 0) {
    struct stat st {};
    if (::futimens(fd, nullptr) == 0 && ::fstat(fd, &st) == 0)
      offset = mtime_of(st) - 0.5 * (before + wall_now());
    ::close(fd);
    ::unlink(probe.c_str());
  }
  clock_offset_ = offset;
  clock_measured_ = before;
  return offset;
}

std::map<std::string, ClaimInfo> ClaimFolder::snapshot() const {
  Timed timed(*nanoseconds_);
  std::map<std::string, ClaimInfo> newest;
  std::error_code ec;
  if (!fs::is_directory(folder_, ec)) return newest;
  std::map<std::string, std::int64_t> generation;
  for (const auto& entry : fs::directory_iterator(folder_, ec)) {
    auto [run, g] = parse_claim_name(entry.path().filename().string());
    if (g > 0 && g > generation[run]) generation[run] = g;
  }
  const double now = wall_now() + filesystem_clock_offset();
  for (const auto& [run, g] : generation) {
    const std::string path = claim_path(folder_, run, g);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) continue;  // removed since the listing: the run is complete
    ClaimInfo c = parse_claim(path, read_text(path));
    c.run_id = run;
    c.generation = g;
    c.heartbeat_age = std::max(0.0, now - mtime_of(st));
    newest[run] = c;
  }
  return newest;
}

double ClaimFolder::heartbeat_interval() const {
  return std::clamp(stale_after_ / 10, 0.05, 30.0);
}

ClaimFolder::Staleness ClaimFolder::staleness(const ClaimInfo& c) const {
  if (c.heartbeat_age > std::max(stale_after_, 3 * c.heartbeat_interval)) return Staleness::silent;
  // A holder of this machine (same boot, same pid namespace) that has exited, or whose pid now
  // belongs to another process, is gone; a zombie has exited too.
  const ClaimInfo me = this_process();
  if (c.host != me.host || c.boot_id.empty() || c.boot_id != me.boot_id ||
      c.pid_namespace != me.pid_namespace || c.pid <= 0)
    return Staleness::live;
  auto fields = proc_stat_fields(std::to_string(c.pid));
  const bool gone = fields.size() <= 19 || fields[0] == "Z" || fields[0] == "X" ||
                    (!c.pid_start.empty() && fields[19] != c.pid_start);
  return gone ? Staleness::exited : Staleness::live;
}

RunState ClaimFolder::state(const ClaimInfo& c) const {
  if (c.released) return RunState::pending;
  return stale(c) ? RunState::stale : RunState::running;
}

std::unique_ptr<HeldClaim> ClaimFolder::acquire(const std::string& run_id,
                                                const std::optional<ClaimInfo>& known,
                                                std::optional<ClaimInfo>* busy) {
  if (busy) busy->reset();
  if (known && !known->released && !stale(*known)) {
    if (busy) *busy = known;
    return nullptr;
  }
  Timed timed(*nanoseconds_);
  std::error_code ec;
  fs::create_directories(folder_, ec);
  if (ec) throw RuntimeError(folder_ + ": cannot create the claims folder: " + ec.message());
  ClaimInfo mine = this_process();
  mine.run_id = run_id;
  mine.generation = known ? known->generation + 1 : 1;
  mine.started = [] {
    std::time_t t = std::time(nullptr);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    return std::string(buf);
  }();
  mine.path = claim_path(folder_, run_id, mine.generation);
  mine.heartbeat_interval = heartbeat_interval();
  if (!create_exclusively(mine.path, claim_text(mine))) {
    // Another process won this generation.
    if (busy) *busy = parse_claim(mine.path, read_text(mine.path));
    if (busy && *busy) (*busy)->run_id = run_id;
    return nullptr;
  }
  return std::make_unique<HeldClaim>(mine, claim_path(folder_, run_id, mine.generation + 1),
                                     mine.heartbeat_interval, nanoseconds_);
}

void ClaimFolder::remove_all(const std::string& run_id) {
  Timed timed(*nanoseconds_);
  std::error_code ec;
  std::vector<std::int64_t> generations;
  for (const auto& entry : fs::directory_iterator(folder_, ec)) {
    auto [run, g] = parse_claim_name(entry.path().filename().string());
    if (g > 0 && run == run_id) generations.push_back(g);
  }
  // Oldest first: the newest generation stays visible to the end.
  std::sort(generations.begin(), generations.end());
  for (auto g : generations) ::unlink(claim_path(folder_, run_id, g).c_str());
}

HeldClaim::HeldClaim(ClaimInfo info, std::string next_path, double heartbeat_seconds,
                     std::shared_ptr<std::atomic<std::int64_t>> nanoseconds)
    : info_(std::move(info)),
      next_path_(std::move(next_path)),
      interval_(heartbeat_seconds),
      nanoseconds_(std::move(nanoseconds)) {
  thread_ = std::thread([this] { heartbeat_loop(); });
}

HeldClaim::~HeldClaim() {
  try {
    if (!done_) release();
  } catch (...) {
    stop_heartbeat();  // a claim that cannot be released goes stale; another process takes it
  }
}

void HeldClaim::heartbeat_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto period = std::chrono::duration<double>(interval_);
  while (!stopping_) {
    if (wake_.wait_for(lock, period, [this] { return stopping_; })) break;
    Timed timed(*nanoseconds_);
    // Refreshing a claim that another process took over would make its takeover look fresh to a
    // third: stop beating instead. The trainer asks still_held() before it writes.
    struct stat st {};
    if (::stat(next_path_.c_str(), &st) == 0) break;
    if (::utimensat(AT_FDCWD, info_.path.c_str(), nullptr, 0) != 0 && errno == ENOENT) break;
  }
}

void HeldClaim::stop_heartbeat() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool HeldClaim::still_held() const {
  Timed timed(*nanoseconds_);
  struct stat st {};
  return ::stat(info_.path.c_str(), &st) == 0 && ::stat(next_path_.c_str(), &st) != 0;
}

void HeldClaim::release() {
  stop_heartbeat();
  done_ = true;
  Timed timed(*nanoseconds_);
  ClaimInfo released = info_;
  released.released = true;
  released.generation = info_.generation + 1;
  released.path = next_path_;
  // Exists already: another process took the claim over, and the run is its to let go.
  create_exclusively(next_path_, claim_text(released));
}

void HeldClaim::complete(ClaimFolder& folder) {
  stop_heartbeat();
  done_ = true;
  folder.remove_all(info_.run_id);
}

}  // namespace flatface
