// Several `flatface run` processes on one grid: each run is trained exactly once, by whoever
// claims it; a killed or paused holder's run is taken over and resumed from its checkpoint; and
// the numbers always equal those of one process training the grid alone (CPU, one thread).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <thread>
#include <vector>

#include "catch_compat.hpp"
#include "cli_test_support.hpp"
#include "grid/run_claim.hpp"
#include "results/result_store.hpp"
#include "run_records.hpp"
#include "tiny_grid.hpp"

using namespace flatface;
using namespace flatface::testing;
using namespace std::chrono_literals;

namespace {

// 2 setups (one and two passes) x 3 seeds of a tiny real model, 2 epochs each: 6 runs.
std::string grid(const fs::path& output) {
  TinyGrid g;
  g.name = "grid";
  g.seeds = {0, 1, 2};
  g.output = output.string();
  g.epochs = 2;
  g.train_keys = {"milestones = [1]", "log_every_steps = 1"};
  return tiny_grid(g);
}
constexpr std::size_t kRuns = 6, kEpochs = 2;

// The grid trained by one process alone, once for all the tests of this file.
const fs::path& serial_folder() {
  static TempDir tmp("grid-reference");
  static const fs::path out = [] {
    const fs::path folder = tmp.path / "serial";
    Result r = run_cli("run '" + tmp.write("serial.toml", grid(folder)) + "' --no-report");
    CATCH_REQUIRE(r.code == 0);
    return folder;
  }();
  return out;
}

const std::map<std::string, RunRecord>& serial_reference() {
  static const std::map<std::string, RunRecord> reference = records(serial_folder());
  return reference;
}

// Every run complete, with every number of every epoch equal to the serial run's.
void check_equals_serial(const fs::path& folder) {
  const auto& want = serial_reference();
  CATCH_REQUIRE(want.size() == kRuns);
  check_same_runs(records(folder), want, "S");
}

std::size_t count_of(const std::string& text, const std::regex& pattern) {
  return static_cast<std::size_t>(std::distance(
      std::sregex_iterator(text.begin(), text.end(), pattern), std::sregex_iterator()));
}

// `flatface ARGS...` in the background, stdout and stderr appended to `log`.
pid_t start(const std::vector<std::string>& args, const fs::path& log) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    std::vector<char*> argv{const_cast<char*>("flatface")};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(FLATFACE_CLI, argv.data());
    ::_exit(127);
  }
  return pid;
}

int exit_code(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

// Polls until `ready()` (true) or `limit` passes (false).
template <typename F>
bool wait_for(F ready, std::chrono::seconds limit = 120s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (ready()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

// A run in the middle of its training: one epoch recorded and checkpointed, more to come.
std::string run_in_progress(const fs::path& folder) {
  for (const auto& [name, r] : records(folder))
    if (r.status == RunState::running && !r.epochs.empty() &&
        fs::exists(folder / "checkpoints" / (fs::path(name).stem().string() + ".ckpt")))
      return fs::path(name).stem().string();
  return "";
}

// No run is held: each run's newest claim file, if any, lets it go.
void check_no_claim_held(const fs::path& folder) {
  for (const auto& [run, claim] : ClaimFolder(folder.string(), 300).snapshot()) {
    CATCH_CAPTURE(run);
    CATCH_CHECK(claim.released);
  }
}

}  // namespace

CATCH_TEST_CASE("two processes started together train every run exactly once, as one would") {
  serial_reference();
  TempDir tmp("grid-two");
  const fs::path out = tmp.path / "out";
  const std::string toml = tmp.write("grid.toml", grid(out));
  pid_t a = start({"run", toml, "--no-report"}, tmp.path / "a.log");
  pid_t b = start({"run", toml, "--no-report"}, tmp.path / "b.log");
  CATCH_CHECK(exit_code(a) == 0);
  CATCH_CHECK(exit_code(b) == 0);
  const std::string logs = text_of(tmp.path / "a.log") + text_of(tmp.path / "b.log");
  CATCH_CAPTURE(logs);
  // Each epoch of each run was trained by one process only, and each run finished once.
  CATCH_CHECK(count_of(logs, std::regex(R"(\] (SAM-)?ArcFace seed=\d( rho=0.05)? epoch \d/2:)")) ==
              kRuns * kEpochs);
  CATCH_CHECK(count_of(logs, std::regex(R"(\(\w+\): done in)")) == kRuns);
  for (const auto& [name, r] : serial_reference()) {
    const std::string id = fs::path(name).stem().string();
    CATCH_CHECK(count_of(logs, std::regex("\\(" + id + "\\): done in")) == 1);
  }
  check_equals_serial(out);
  // Complete runs leave no claim files behind, and another pass leaves their files untouched.
  CATCH_CHECK(ClaimFolder(out.string(), 300).snapshot().empty());
  std::map<std::string, std::string> bytes;
  for (const auto& [name, r] : records(out)) bytes[name] = text_of(out / name);
  Result again = run_cli("run '" + toml + "' --no-report");
  CATCH_CHECK(again.code == 0);
  CATCH_CHECK(count_of(again.out, std::regex("already complete, skipped")) == kRuns);
  for (const auto& [name, b] : bytes) CATCH_CHECK(text_of(out / name) == b);
  CATCH_CHECK((!fs::exists(out / "claims") || fs::is_empty(out / "claims")));
}

CATCH_TEST_CASE("a run whose process was killed is taken over and resumed from its checkpoint") {
  serial_reference();
  TempDir tmp("grid-kill");
  const fs::path out = tmp.path / "out";
  const std::string toml = tmp.write("grid.toml", grid(out));
  pid_t a = start({"run", toml, "--no-report"}, tmp.path / "a.log");
  std::string victim;
  CATCH_REQUIRE(wait_for([&] { return !(victim = run_in_progress(out)).empty(); }));
  ::kill(a, SIGKILL);
  CATCH_CHECK(exit_code(a) == -SIGKILL);

  pid_t b = start({"run", toml, "--no-report", "--stale-after", "2"}, tmp.path / "b.log");
  CATCH_CHECK(exit_code(b) == 0);
  const std::string log = text_of(tmp.path / "b.log");
  CATCH_CAPTURE(log);
  CATCH_CHECK(contains(log, "(" + victim + "): took over the stale claim of"));
  CATCH_CHECK(contains(log, "(its process has exited)"));
  CATCH_CHECK(count_of(log, std::regex("resuming run " + victim + " from epoch [1-9]")) == 1);
  check_equals_serial(out);
}

CATCH_TEST_CASE(
    "a paused holder's claim goes stale and is taken over; resumed, the holder lets the run go") {
  serial_reference();
  TempDir tmp("grid-pause");
  const fs::path out = tmp.path / "out";
  const std::string toml = tmp.write("grid.toml", grid(out));
  pid_t a = start({"run", toml, "--no-report", "--stale-after", "1"}, tmp.path / "a.log");
  std::string victim;
  CATCH_REQUIRE(wait_for([&] { return !(victim = run_in_progress(out)).empty(); }));
  ::kill(a, SIGSTOP);
  pid_t b = start({"run", toml, "--no-report", "--stale-after", "1"}, tmp.path / "b.log");
  const bool taken = wait_for([&] {
    return contains(text_of(tmp.path / "b.log"), "(" + victim + "): took over the stale claim of");
  });
  ::kill(a, SIGCONT);
  CATCH_CHECK(taken);
  CATCH_CHECK(exit_code(a) == 0);
  CATCH_CHECK(exit_code(b) == 0);
  const std::string log_a = text_of(tmp.path / "a.log"), log_b = text_of(tmp.path / "b.log");
  CATCH_CAPTURE(log_a);
  CATCH_CAPTURE(log_b);
  CATCH_CHECK(contains(log_b, "(" + victim + "): took over the stale claim of"));
  CATCH_CHECK(count_of(log_b, std::regex("took over the stale claim of [^ ]+ \\(no heartbeat for "
                                         "0m0[1-9]s\\)")) == 1);
  CATCH_CHECK(contains(log_a, "(" + victim + "): taken over by another process"));
  // The paused process finished no epoch of the run after it lost it.
  CATCH_CHECK(count_of(log_a + log_b, std::regex(R"(\(\w+\): done in)")) == kRuns);
  check_equals_serial(out);
}

CATCH_TEST_CASE("--workers 2 ends with the table of one worker") {
  serial_reference();
  TempDir tmp("grid-workers");
  const fs::path out = tmp.path / "out";
  Result r = run_cli("run '" + tmp.write("grid.toml", grid(out)) + "' --workers 2 --threads 1");
  CATCH_CAPTURE(r.out);
  CATCH_REQUIRE(r.code == 0);
  CATCH_CHECK(contains(r.out, "on 2 workers (cpu,cpu; 1 threads each)"));
  CATCH_CHECK(
      contains(r.out, "grid: 6 trained by 2 workers, 0 already complete, 0 failed, 0 unfinished"));
  // The table is the one `report` makes of the serial grid's files.
  Result table = run_cli("report '" + serial_folder().string() + "'");
  CATCH_REQUIRE(table.code == 0);
  CATCH_CHECK(contains(r.out, "\n" + table.out));
  check_equals_serial(out);
  for (const char* worker : {"1", "2"}) {
    bool found = false;
    for (const auto& entry : fs::directory_iterator(out / "logs"))
      found =
          found || contains(entry.path().filename().string(), std::string("-") + worker + ".log");
    CATCH_CHECK(found);
  }
}

CATCH_TEST_CASE("Ctrl-C stops every worker; each run is complete or resumes to the same numbers") {
  serial_reference();
  TempDir tmp("grid-sigint");
  const fs::path out = tmp.path / "out";
  const std::string toml = tmp.write("grid.toml", grid(out));
  pid_t parent = start({"run", toml, "--workers", "2", "--threads", "1"}, tmp.path / "run.log");
  CATCH_REQUIRE(wait_for([&] { return !run_in_progress(out).empty(); }));
  ::kill(parent, SIGINT);
  CATCH_CHECK(exit_code(parent) == 130);
  const std::string log = text_of(tmp.path / "run.log");
  CATCH_CAPTURE(log);
  CATCH_CHECK(contains(log, "interrupted: every run is complete or saved at its last step"));
  std::size_t complete = 0;
  for (const auto& [name, r] : records(out)) {
    CATCH_CAPTURE(name);
    const bool saved = fs::exists(out / "checkpoints" / (fs::path(name).stem().string() + ".ckpt"));
    CATCH_CHECK((r.status == RunState::complete || (r.status == RunState::running && saved)));
    complete += r.status == RunState::complete;
  }
  CATCH_CHECK(complete < kRuns);
  check_no_claim_held(out);
  CATCH_REQUIRE(run_cli("run '" + toml + "' --no-report").code == 0);
  check_equals_serial(out);
}
