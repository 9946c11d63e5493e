// `flatface run` on data-parallel ranks: --nproc 2 trains a tiny grid to a complete report with
// the numbers of one process, a kill -9 of one rank stops the other within the collective timeout
// naming the lost rank, and the run then resumes (also with another number of ranks) to the result
// of an uninterrupted one.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>
#include <thread>

#include "catch_compat.hpp"
#include "cli_test_support.hpp"
#include "distributed/local_ranks.hpp"
#include "results/run_state.hpp"
#include "tiny_grid.hpp"

using namespace flatface::testing;
using catch_compat::Contains;

namespace {

const std::string toy_plugins = std::string(FLATFACE_TEST_PLUGIN_DIR) + "/good";

// BN-free toy backbone, the real SAM: two ranks take one process's steps.
std::string grid(const std::string& output, int epochs, int images) {
  TinyGrid g = tiny_toy_grid();
  g.name = "dist";
  g.output = output;
  g.train = R"({ plugin = "test-toy-data", classes = 3, images = )" + std::to_string(images) + " }";
  g.epochs = epochs;
  g.batch_size = 6;
  g.train_keys = {"lr = 0.05"};
  g.setups = {
      {"sam", R"({ plugin = "test-toy-head", s = 8.0 })", R"({ plugin = "sam", rho = 0.1 })"}};
  g.extra_tables = "[plugins]\npaths = [\"" + toy_plugins + "\"]\n";
  return tiny_grid(g);
}

// The run in `folder`: its status, then every epoch's losses and accuracies by dataset name
// (wall time and images/s left out).
struct Metrics {
  std::string status;
  std::map<std::string, std::vector<double>> series;
};
Metrics metrics(const std::string& folder) {
  const std::string script =
      "import h5py,glob,sys\n"
      "p=sys.argv[1]\n"
      "f=h5py.File(p if p.endswith('.h5') else glob.glob(p+'/*.h5')[0],'r')\n"
      "s=f.attrs['status']\n"
      "print(s.decode() if isinstance(s,bytes) else s)\n"
      "def walk(g,p):\n"
      "  for k in sorted(g.keys()):\n"
      "    d=g[k]\n"
      "    if isinstance(d,h5py.Group): walk(d,p+k+'/'); continue\n"
      "    if ('loss' in k or 'accuracy' in k) and d.dtype.kind=='f':\n"
      "      print(p+k,' '.join(repr(float(v)) for v in d[()].ravel()))\n"
      "walk(f,'')\n";
  auto r = shell("'" + std::string(FLATFACE_PYTHON) + "' -c \"" + script + "\" " + folder);
  CATCH_INFO(r.out);
  CATCH_REQUIRE(r.code == 0);
  std::istringstream in(r.out);
  Metrics m;
  std::getline(in, m.status);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string key;
    fields >> key;
    double v;
    while (fields >> v) m.series[key].push_back(v);
  }
  return m;
}

// Equal series, to `tolerance` (NaN equals NaN: a statistic neither computed).
void check_same(const Metrics& a, const Metrics& b, double tolerance) {
  CATCH_CHECK(a.status == b.status);
  CATCH_REQUIRE(a.series.size() == b.series.size());
  CATCH_CHECK(!a.series.empty());
  for (const auto& [key, values] : a.series) {
    CATCH_INFO(key);
    const auto& other = b.series.at(key);
    CATCH_REQUIRE(values.size() == other.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (std::isnan(values[i]) && std::isnan(other[i])) continue;
      CATCH_CHECK(std::abs(values[i] - other[i]) <= tolerance);
    }
  }
}

// One rank of two, as srun or a second machine would start it, its output in DIR/rankR.log.
pid_t start_rank_process(int rank, const std::string& port, const std::string& toml,
                         const TempDir& dir, const std::string& timeout) {
  std::fflush(nullptr);  // the child must not print this process's buffered output again
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("RANK", std::to_string(rank).c_str(), 1);
    ::setenv("WORLD_SIZE", "2", 1);
    ::setenv("MASTER_ADDR", "127.0.0.1", 1);
    ::setenv("MASTER_PORT", port.c_str(), 1);
    const std::string log = dir / ("rank" + std::to_string(rank) + ".log");
    std::freopen(log.c_str(), "w", stdout);
    std::freopen(log.c_str(), "a", stderr);
    ::execl(FLATFACE_CLI, FLATFACE_CLI, "run", toml.c_str(), "--threads", "1", "--dist-timeout",
            timeout.c_str(), "--no-report", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// Waits up to `limit` for `pid` to exit: its status, or nullopt (then it is killed).
std::optional<int> exit_within(pid_t pid, std::chrono::seconds limit) {
  const auto start = std::chrono::steady_clock::now();
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() - start > limit) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return status;
}

// Rank 0 (its exit `status`, nullopt when it did not exit in time) stopped with an error naming
// rank 1 as lost.
void check_stopped_naming_rank1(const std::optional<int>& status, const TempDir& dir) {
  const std::string text = text_of(dir / "rank0.log");
  CATCH_INFO(text);
  CATCH_REQUIRE(status);
  CATCH_CHECK(WIFEXITED(*status));
  CATCH_CHECK(WEXITSTATUS(*status) != 0);
  CATCH_CHECK_THAT(text, Contains("rank 1 of 2 lost"));
}

// `flatface run TOML --threads 1 --no-report EXTRA`, which must succeed; its output.
std::string train_to_end(const std::string& toml, const std::string& extra) {
  auto r = run_cli("run " + toml + " --threads 1 --no-report " + extra);
  CATCH_INFO(r.out);
  CATCH_REQUIRE(r.code == 0);
  return r.out;
}

// Until the run in `output` has saved its first checkpoint (30 s at most): it is training.
void wait_for_checkpoints(const std::string& output) {
  const auto checkpoints = std::filesystem::path(output) / "checkpoints";
  for (int k = 0; k < 600 && !std::filesystem::exists(checkpoints); ++k)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

}  // namespace

CATCH_TEST_CASE("--nproc 2 trains a tiny grid to a complete report with one process's numbers") {
  TempDir dir("dist-nproc");
  const auto one = dir.write("one.toml", grid(dir / "one", 2, 24));
  const auto two = dir.write("two.toml", grid(dir / "two", 2, 24));
  auto a = run_cli("run " + one + " --threads 1");
  CATCH_REQUIRE(a.code == 0);
  auto b = run_cli("run " + two + " --threads 1 --nproc 2");
  CATCH_INFO(b.out);
  CATCH_REQUIRE(b.code == 0);
  CATCH_CHECK_THAT(b.out, Contains("rank 0 of 2"));
  auto report = run_cli("report " + (dir / "two"));
  CATCH_CHECK(report.code == 0);
  CATCH_CHECK_THAT(report.out, Contains("sam"));
  const Metrics m = metrics(dir / "two");
  CATCH_CHECK(m.status == to_string(flatface::RunState::complete));
  check_same(m, metrics(dir / "one"), 1e-5);
}

CATCH_TEST_CASE("--workers 2 --nproc 2: two grid workers of two ranks each give one process's runs") {
  TempDir dir("dist-workers");
  std::string text = grid(dir / "one", 1, 24);
  text.replace(text.find("seeds = [0]"), 11, "seeds = [0, 1]");
  const auto one = dir.write("one.toml", text);
  text.replace(text.find(dir / "one"), (dir / "one").size(), dir / "two");
  const auto two = dir.write("two.toml", text);
  CATCH_REQUIRE(run_cli("run " + one + " --threads 1 --no-report").code == 0);
  auto b = run_cli("run " + two + " --threads 1 --workers 2 --nproc 2");
  CATCH_INFO(b.out);
  CATCH_REQUIRE(b.code == 0);
  CATCH_CHECK_THAT(b.out, Contains("on 2 workers (cpu+cpu,cpu+cpu"));
  int runs = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir / "one")) {
    if (f.path().extension() != ".h5") continue;
    ++runs;
    const std::string name = f.path().filename().string();
    // Each run was trained by the two ranks of one worker (its log says so).
    check_same(metrics((dir / "two") + "/" + name), metrics(f.path().string()), 1e-5);
  }
  CATCH_CHECK(runs == 2);
  std::string logs;
  for (const auto& f : std::filesystem::directory_iterator(dir / "two/logs"))
    logs += text_of(f.path().string());
  CATCH_CHECK_THAT(logs, Contains("rank 0 of 2"));
}

CATCH_TEST_CASE("kill -9 of one rank stops the other naming it; the run then resumes") {
  TempDir dir("dist-kill");
  const auto killed = dir.write("killed.toml", grid(dir / "killed", 200, 60));
  const auto whole = dir.write("whole.toml", grid(dir / "whole", 200, 60));
  const std::string port = std::to_string(flatface::distributed::free_local_port());
  const pid_t r0 = start_rank_process(0, port, killed, dir, "20");
  const pid_t r1 = start_rank_process(1, port, killed, dir, "20");
  // Wait until an epoch is saved, then kill rank 1 in the middle of the run.
  wait_for_checkpoints(dir / "killed");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CATCH_REQUIRE(::kill(r1, SIGKILL) == 0);
  ::waitpid(r1, nullptr, 0);
  // Within the collective timeout (20 s) and the diagnosis; a closed connection is seen at once.
  const auto status = exit_within(r0, std::chrono::seconds(20 + 10));
  check_stopped_naming_rank1(status, dir);
  // Resumable, not failed.
  CATCH_CHECK(metrics(dir / "killed").status == to_string(flatface::RunState::running));

  // Resumed with 2 ranks, the run ends where an uninterrupted one does.
  CATCH_CHECK_THAT(train_to_end(killed, "--nproc 2"), Contains("resuming"));
  train_to_end(whole, "--nproc 2");
  check_same(metrics(dir / "killed"), metrics(dir / "whole"), 1e-6);
}

CATCH_TEST_CASE("a run saved mid-epoch by 2 ranks resumes in 1 process to the same result") {
  TempDir dir("dist-resize");
  const auto split = dir.write("split.toml", grid(dir / "split", 3, 24));
  const auto whole = dir.write("whole.toml", grid(dir / "whole", 3, 24));
  auto first = run_cli("run " + split + " --threads 1 --nproc 2 --stop-after-steps 5 --no-report");
  CATCH_INFO(first.out);
  CATCH_REQUIRE(first.code == 130);
  train_to_end(split, "");
  train_to_end(whole, "");
  check_same(metrics(dir / "split"), metrics(dir / "whole"), 1e-5);
}

CATCH_TEST_CASE("a rank that hangs is named lost once the collective timeout passes") {
  TempDir dir("dist-hang");
  const auto toml = dir.write("hang.toml", grid(dir / "hang", 200, 60));
  const std::string port = std::to_string(flatface::distributed::free_local_port());
  const pid_t r0 = start_rank_process(0, port, toml, dir, "5");
  const pid_t r1 = start_rank_process(1, port, toml, dir, "5");
  wait_for_checkpoints(dir / "hang");
  CATCH_REQUIRE(::kill(r1, SIGSTOP) == 0);  // alive, but answers nothing (nor beats)
  const auto status = exit_within(r0, std::chrono::seconds(5 + 15));
  ::kill(r1, SIGKILL);
  ::waitpid(r1, nullptr, 0);
  check_stopped_naming_rank1(status, dir);
}
