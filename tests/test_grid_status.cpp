// Seeing and scheduling a grid: `flatface status` (a row per run, counts, exit code), `report` of
// a grid in progress (what is missing), and `plan --format json | --sbatch` (one job per run).
// Runs the built binary on a tiny real model.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "catch_compat.hpp"
#include "cli_test_support.hpp"
#include "json_file.hpp"
#include "results/result_store.hpp"
#include "tiny_grid.hpp"

using namespace flatface::testing;

namespace {

// 3 seeds x (plain + sam at 3 rho values) = 12 runs of one step per epoch.
std::string toy_grid(const std::string& output) {
  TinyGrid g;
  g.name = "toy";
  g.seeds = {0, 1, 2};
  g.device = "";  // the tests choose it with --set
  g.output = output;
  g.train = R"({ plugin = "synthetic", identities = 4, images_per_identity = 4, seed = 0 })";
  g.eval = {R"({ name = "S", plugin = "synthetic", identities = 6, images_per_identity = 4, )"
            R"(seed = 0, pairs = 20, verification_identities = 4 })"};
  g.backbone = R"({ plugin = "iresnet-small", width = 4, embedding = 8 })";
  g.epochs = 2;
  g.train_keys = {"milestones = [1]"};
  g.setups = {{"plain"},
              {"sam", R"({ plugin = "arcface" })", R"({ plugin = "sam", rho = [0.1, 0.2, 0.3] })"}};
  return tiny_grid(g);
}

struct PlannedRun {
  std::string id, setup, rho;
  int seed = 0;
};

std::vector<PlannedRun> planned(const std::string& toml, const std::string& extra = "") {
  Result r = run_cli("plan '" + toml + "' --format json" + extra);
  CATCH_REQUIRE(r.code == 0);
  auto json = Json::parse(r.out);
  std::vector<PlannedRun> out;
  for (const auto& run : json.at("runs")) {
    PlannedRun p;
    p.id = run.at("id").get<std::string>();
    p.setup = run.at("setup").get<std::string>();
    p.seed = run.at("seed").get<int>();
    char buf[32];
    if (run.at("rho").is_number()) {
      std::snprintf(buf, sizeof buf, "%g", run.at("rho").get<double>());
      p.rho = buf;
    }
    out.push_back(p);
  }
  return out;
}

const PlannedRun& find_run(const std::vector<PlannedRun>& runs, const std::string& setup, int seed,
                           const std::string& rho = "") {
  auto it = std::find_if(runs.begin(), runs.end(), [&](const PlannedRun& r) {
    return r.setup == setup && r.seed == seed && r.rho == rho;
  });
  CATCH_REQUIRE(it != runs.end());
  return *it;
}

// A claim as a process on another machine writes it, its last heartbeat `age` seconds ago.
void foreign_claim(const fs::path& output, const std::string& run, int pid, double age) {
  fs::create_directories(output / "claims");
  const auto path = output / "claims" / (run + ".1.claim");
  std::ofstream(path) << "run = " << run << "\nstate = held\nhost = elsewhere\npid = " << pid
                      << "\nheartbeat = 30\n";
  const auto then = std::chrono::system_clock::now() -
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(
                        std::chrono::duration<double>(age));
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(then.time_since_epoch()).count();
  timespec times[2];
  times[0].tv_sec = times[1].tv_sec = static_cast<time_t>(ns / 1000000000);
  times[0].tv_nsec = times[1].tv_nsec = static_cast<long>(ns % 1000000000);
  ::utimensat(AT_FDCWD, path.c_str(), times, 0);
}

// The status line of one run: the row that starts with its id.
std::string row_of(const std::string& status, const std::string& id) {
  auto at = status.find("\n" + id + " ");
  if (at == std::string::npos) return "";
  return status.substr(at + 1, status.find('\n', at + 1) - at - 1);
}

}  // namespace

CATCH_TEST_CASE(
    "status shows each run's state, counts them, and exits 0 only when all are complete") {
  TempDir tmp("status");
  const fs::path out = tmp.path / "out";
  const std::string toml = tmp.write("toy.toml", toy_grid(out.string()));
  const auto runs = planned(toml);
  CATCH_REQUIRE(runs.size() == 12);
  const std::string cpu = " --set experiment.device='\"cpu\"'";
  CATCH_REQUIRE(run_cli("run '" + toml + "' --only seed=0 --no-report" + cpu).code == 0);

  // Seed 1 of plain is being trained elsewhere, seed 2's trainer went silent ten minutes ago, and
  // sam rho=0.3 seed 2 failed.
  const auto& running = find_run(runs, "plain", 1);
  const auto& stale = find_run(runs, "plain", 2);
  const auto& failed = find_run(runs, "sam", 2, "0.3");
  foreign_claim(out, running.id, 4242, 3);
  foreign_claim(out, stale.id, 4243, 600);
  flatface::RunRecord record;
  record.status = flatface::RunState::failed;
  record.failure_reason = "loss exploded";
  record.attributes = {{"run_id", failed.id}, {"setup", "sam"}, {"seed", "2"}, {"rho", "0.3"}};
  flatface::write_run_record((out / (failed.id + ".h5")).string(), record);

  Result status = run_cli("status '" + out.string() + "'");
  CATCH_CAPTURE(status.out);
  CATCH_CHECK(status.code == 1);
  CATCH_CHECK(contains(status.out, "toy: 12 runs in " + out.string()));
  CATCH_CHECK(contains(row_of(status.out, find_run(runs, "plain", 0).id), "2/2"));
  CATCH_CHECK(contains(row_of(status.out, find_run(runs, "plain", 0).id), "complete"));
  CATCH_CHECK(contains(row_of(status.out, running.id), "running on elsewhere:4242, epoch 1/2"));
  CATCH_CHECK(
      contains(row_of(status.out, stale.id), "stale: elsewhere:4243, no heartbeat for 10m0"));
  CATCH_CHECK(contains(row_of(status.out, failed.id), "failed: loss exploded"));
  CATCH_CHECK(contains(row_of(status.out, find_run(runs, "sam", 1, "0.1").id), "pending"));
  CATCH_CHECK(
      contains(status.out, "\n12 runs: 4 complete, 1 running, 1 stale, 1 failed, 5 pending; ETA "));

  // The experiment file gives the same grid as the folder (whose files record the experiment).
  Result from_file = run_cli("status '" + toml + "'");
  CATCH_CHECK(from_file.code == 1);
  const std::regex age("heartbeat (for )?\\w+");  // a second may pass between the two
  CATCH_CHECK(std::regex_replace(from_file.out, age, "") ==
              std::regex_replace(status.out, age, ""));

  Result json = run_cli("status '" + out.string() + "' --json");
  CATCH_CHECK(json.code == 1);
  auto j = Json::parse(json.out);
  CATCH_CHECK(j.at("counts").at("complete").get<int>() == 4);
  CATCH_CHECK(j.at("counts").at("pending").get<int>() == 5);
  CATCH_CHECK(j.at("complete").get<bool>() == false);
  // ETA: each unfinished run's epochs at its setup's mean time per epoch so far (the complete
  // seed-0 runs), one run at a time (one running).
  std::map<std::string, double> per_epoch;
  for (const auto& r : runs)
    if (r.seed == 0) {
      auto rec = flatface::read_run_record((out / (r.id + ".h5")).string());
      per_epoch[r.setup] += rec.epochs.back().wall_time / 2 / (r.setup == "plain" ? 1 : 3);
    }
  double eta = 0;
  for (const auto& r : runs)
    if (r.seed != 0 && r.id != failed.id) eta += 2 * per_epoch.at(r.setup);
  CATCH_CHECK(j.at("eta_seconds").get<double>() == catch_compat::Approx(eta).epsilon(1e-6));
  std::map<std::string, std::string> state_of;
  for (const auto& r : j.at("runs"))
    state_of[r.at("id").get<std::string>()] = r.at("state").get<std::string>();
  CATCH_CHECK(state_of.at(running.id) == "running");
  CATCH_CHECK(state_of.at(stale.id) == "stale");
  CATCH_CHECK(state_of.at(failed.id) == "failed");
  for (const auto& r : j.at("runs"))
    if (r.at("id").get<std::string>() == running.id)
      CATCH_CHECK(r.at("holder").at("host").get<std::string>() == "elsewhere");

  // The report of the grid in progress: the complete runs, and what is missing.
  Result report = run_cli("report '" + out.string() + "'");
  CATCH_CAPTURE(report.out);
  CATCH_CHECK(report.code == 0);
  CATCH_CHECK(contains(report.out, "| plain |"));
  CATCH_CHECK(contains(report.out, "Missing (no result file yet):"));
  CATCH_CHECK(
      contains(report.out, "- plain: seeds 1, 2 (runs " + running.id + ", " + stale.id + ")"));
  CATCH_CHECK(contains(report.out, "- sam rho=0.3: seed 1 (run "));
  CATCH_CHECK(contains(report.out, "loss exploded"));

  // Once every run is complete: exit 0, nothing missing.
  fs::remove_all(out / "claims");
  fs::remove(out / (failed.id + ".h5"));
  CATCH_REQUIRE(run_cli("run '" + toml + "' --no-report" + cpu).code == 0);
  status = run_cli("status '" + out.string() + "' --watch");
  CATCH_CHECK(status.code == 0);
  CATCH_CHECK(
      contains(status.out, "\n12 runs: 12 complete, 0 running, 0 stale, 0 failed, 0 pending\n"));
  CATCH_CHECK_FALSE(contains(run_cli("report '" + out.string() + "'").out, "Missing"));
}

CATCH_TEST_CASE("status of a folder without results or of a bad target is a clear error") {
  TempDir tmp("status");
  fs::create_directories(tmp.path / "empty");
  Result r = run_cli("status '" + (tmp.path / "empty").string() + "'");
  CATCH_CHECK(r.code == 2);
  CATCH_CHECK(contains(r.out, "no result file here records its experiment"));
  r = run_cli("status '" + (tmp.path / "missing").string() + "'");
  CATCH_CHECK(r.code == 2);
}

CATCH_TEST_CASE("plan --format json lists every run with the command that trains it alone") {
  TempDir tmp("plan");
  const std::string toml = tmp.write("toy.toml", toy_grid(""));
  Result r = run_cli("plan '" + toml + "' --format json --set 'experiment.seeds=[4]'");
  CATCH_REQUIRE(r.code == 0);
  auto j = Json::parse(r.out);
  CATCH_CHECK(j.at("experiment").get<std::string>() == "toy");
  CATCH_CHECK(j.at("output").get<std::string>() == "results/toy");
  CATCH_REQUIRE(j.at("runs").size() == 4);  // one seed x (1 + 3 rho values)
  for (std::size_t i = 0; i < 4; ++i) {
    const auto& run = j.at("runs").at(i);
    CATCH_CHECK(run.at("index").get<std::size_t>() == i);
    CATCH_CHECK(run.at("seed").get<int>() == 4);
    const auto argv = run.at("command").get<std::vector<std::string>>();
    CATCH_CHECK(argv == std::vector<std::string>{"flatface", "run", toml, "--set",
                                                 "experiment.seeds=[4]", "--only",
                                                 "id=" + run.at("id").get<std::string>()});
  }
  CATCH_CHECK(j.at("runs").at(0).at("rho").is_null());
  CATCH_CHECK(j.at("runs").at(3).at("rho").get<double>() == catch_compat::Approx(0.3));
}

CATCH_TEST_CASE("plan --sbatch prints a valid bash job array, one task per run with its --only") {
  TempDir tmp("sbatch");
  const std::string toml = tmp.write("toy.toml", toy_grid(""));
  Result r =
      run_cli("plan '" + toml + "' --sbatch --max-parallel 3 --time 01:30:00 --set train.epochs=1");
  CATCH_REQUIRE(r.code == 0);
  const std::string script = tmp.write("grid.sbatch", r.out);
  CATCH_CHECK(shell("bash -n '" + script + "'").code == 0);
  CATCH_CHECK(r.out.rfind("#!/bin/bash\n", 0) == 0);
  CATCH_CHECK(contains(r.out, "\n#SBATCH --array=0-11%3\n"));
  CATCH_CHECK(contains(r.out, "\n#SBATCH --time=01:30:00\n"));
  CATCH_CHECK(contains(r.out, "\n#SBATCH --gpus-per-task=1\n"));  // device "auto"
  CATCH_CHECK(contains(r.out, "\n#SBATCH --chdir="));

  // Array task k runs `flatface run` on the k-th run of the plan, logging to <output>/logs/ID.log.
  const std::string stub = tmp.write("flatface-stub.sh", "#!/bin/sh\nprintf '%s\\n' \"$@\"\n");
  ::chmod(stub.c_str(), 0755);
  const auto runs = planned(toml, " --set train.epochs=1");
  CATCH_REQUIRE(runs.size() == 12);
  for (std::size_t k = 0; k < runs.size(); ++k) {
    CATCH_CAPTURE(k);
    Result task = shell("cd '" + tmp.str() + "' && SLURM_ARRAY_TASK_ID=" + std::to_string(k) +
                        " FLATFACE='" + stub + "' bash '" + script + "'");
    CATCH_CHECK(task.code == 0);
    CATCH_CHECK(text_of(tmp.path / "results" / "toy" / "logs" / (runs[k].id + ".log")) ==
                "run\n" + toml + "\n--set\ntrain.epochs=1\n--only\nid=" + runs[k].id +
                    "\n--no-report\n");
  }
  // Outside Slurm it says what to do.
  Result outside = shell("cd '" + tmp.str() + "' && bash '" + script + "'");
  CATCH_CHECK(outside.code == 2);
  CATCH_CHECK(contains(outside.out, "submit this script with sbatch"));

  // A CPU experiment asks for no GPU; --gpus-per-task says otherwise.
  r = run_cli("plan '" + toml + "' --sbatch --set experiment.device='\"cpu\"'");
  CATCH_CHECK_FALSE(contains(r.out, "--gpus-per-task"));
  CATCH_CHECK_FALSE(contains(r.out, "%"));
  r = run_cli("plan '" + toml + "' --sbatch --gpus-per-task 2");
  CATCH_CHECK(contains(r.out, "\n#SBATCH --gpus-per-task=2\n"));
  r = run_cli("plan '" + toml + "' --sbatch --time 90min");
  CATCH_CHECK(r.code == 2);
  CATCH_CHECK(contains(r.out, "--time 90min: expected HH:MM:SS"));
}
