// `flatface run` killed with SIGKILL at many moments: every result file stays readable, a
// complete run's file is never touched again, and resuming ends with exactly the numbers of an
// uninterrupted grid (CPU, same thread count).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <thread>

#include "catch_compat.hpp"
#include "cli_test_support.hpp"
#include "results/result_store.hpp"
#include "run_records.hpp"
#include "tiny_grid.hpp"

using namespace flatface;
using namespace flatface::testing;

namespace {

// Two setups (one and two passes) of a tiny real model on synthetic identities, 3 epochs each.
std::string grid(const fs::path& output) {
  TinyGrid g;
  g.name = "crash";
  g.output = output.string();
  g.epochs = 3;
  g.train_keys = {"milestones = [2]", "log_every_steps = 1"};
  return tiny_grid(g);
}

std::size_t epochs_recorded(const fs::path& folder) {
  std::size_t n = 0;
  for (const auto& [name, r] : records(folder)) n += r.epochs.size();
  return n;
}

// `flatface run TOML` in the background, its output in `log`.
pid_t start_run(const std::string& toml, const fs::path& log) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::execl(FLATFACE_CLI, "flatface", "run", toml.c_str(), "--no-report",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

}  // namespace

CATCH_TEST_CASE("a grid killed with SIGKILL again and again resumes to the uninterrupted numbers") {
  TempDir tmp("crash");
  const fs::path reference = tmp.path / "reference", crashed = tmp.path / "crashed";
  Result ref = run_cli("run '" + tmp.write("reference.toml", grid(reference)) + "' --no-report");
  CATCH_REQUIRE(ref.code == 0);
  const std::string toml = tmp.write("crashed.toml", grid(crashed));
  const fs::path log = tmp.path / "crashed.log";

  std::map<std::string, std::string> complete;  // file -> its bytes when first seen complete
  int kills = 0;
  bool finished = false;
  using namespace std::chrono_literals;
  // Kill soon after each new epoch appears, at a delay that varies, so that the kills land in
  // evaluation, between the result file and the checkpoint, in the next epoch's steps, ...
  const std::chrono::milliseconds delays[] = {0ms, 120ms, 30ms, 300ms, 60ms, 600ms};
  for (int attempt = 0; attempt < 24 && !finished; ++attempt) {
    const std::size_t target = epochs_recorded(crashed) + 1;
    pid_t pid = start_run(toml, log);
    CATCH_REQUIRE(pid > 0);
    for (;;) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        CATCH_REQUIRE(WIFEXITED(status));
        CATCH_REQUIRE(WEXITSTATUS(status) == 0);
        finished = true;
        break;
      }
      if (epochs_recorded(crashed) >= target) {
        std::this_thread::sleep_for(delays[attempt % std::size(delays)]);
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        ++kills;
        break;
      }
      std::this_thread::sleep_for(5ms);
    }
    // After every kill: each file reads, and a complete run's file is byte-identical.
    for (const auto& [name, record] : records(crashed)) {
      if (record.status != RunState::complete) continue;
      const std::string bytes = text_of(crashed / name);
      auto [it, first_time] = complete.emplace(name, bytes);
      CATCH_CHECK((first_time || it->second == bytes));
    }
  }
  CATCH_CHECK(kills >= 3);
  if (!finished) CATCH_REQUIRE(run_cli("run '" + toml + "' --no-report").code == 0);

  auto expected = records(reference);
  CATCH_REQUIRE(expected.size() == 2);
  check_same_runs(records(crashed), expected, "S");
}
