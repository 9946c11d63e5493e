// The grid runner driven directly, as `flatface run` drives it: it trains every run it can claim,
// settles complete and failed runs, stops on the stop flag with the run saved, waits for runs that
// a live process holds and takes stale claims over; and it tells its observers each step of it.
// Expectations come from the files on disk and from counting, not from the runner's own words.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "catch_compat.hpp"
#include "cli_test_support.hpp"
#include "grid/grid_runner.hpp"
#include "grid/grid_workers.hpp"
#include "grid/run_claim.hpp"
#include "grid/worker_events.hpp"
#include "plugin_host/factory.hpp"
#include "results/result_store.hpp"

using namespace flatface;
using namespace flatface::testing;

namespace {

// `seeds` x one setup (plain SGD) of a tiny real model, one epoch of 4 steps each.
Experiment grid_of_seeds(const fs::path& output, const std::string& seeds = "[0, 1]") {
  const std::string experiment = "[experiment]\nname = \"tiny\"\nseeds = " + seeds +
                                 "\ndevice = \"cpu\"\nthreads = 1\noutput = \"" + output.string() +
                                 "\"\n";
  return parse_experiment(experiment + R"(
[data]
train = { plugin = "synthetic", identities = 8, images_per_identity = 8, seed = 0 }
eval = [
  { name = "S", plugin = "synthetic", identities = 8, images_per_identity = 8, seed = 0, pairs = 40, verification_identities = 6 },
]

[model]
backbone = { plugin = "iresnet-small", width = 4, embedding = 16 }

[train]
epochs = 1
batch_size = 16
milestones = []
log_every_steps = 0

[[setup]]
name = "plain"
head = { plugin = "arcface" }
perturbation = { plugin = "none" }
)",
                          "tiny.toml");
}

Registry& registry() {
  static auto reg = open_registry({});
  return *reg;
}

// Everything an observer is told, in order.
struct Recorder : GridObserver {
  struct Event {
    std::string kind, run_id, detail;
    int status = -1;  // run_ended: the RunStatus; run_settled: the Settled
  };
  std::vector<Event> events;
  std::vector<GridSummary> summaries;
  std::function<void(const RunProgress&)> on_step;  // told of every training step
  std::function<void(const std::string&)> on_waiting;

  struct Steps : TrainCallback {
    Recorder* owner = nullptr;
    void on_step(const RunProgress& p) override {
      if (owner->on_step) owner->on_step(p);
    }
  } steps;

  void run_settled(const GridRun& r, Settled how, const std::string& reason) override {
    events.push_back({"settled", r.id, reason, static_cast<int>(how)});
  }
  void claim_taken_over(const GridRun& r, const std::string& text) override {
    events.push_back({"taken_over", r.id, text});
  }
  void run_started(const GridRun& r) override { events.push_back({"started", r.id, r.tag()}); }
  TrainCallback* run_progress(const GridRun&) override {
    steps.owner = this;
    return &steps;
  }
  void run_ended(const GridRun& r, RunStatus s, const std::string& message) override {
    events.push_back({"ended", r.id, message, static_cast<int>(s)});
  }
  void waiting(const std::string& text) override {
    events.push_back({"waiting", "", text});
    if (on_waiting) on_waiting(text);
  }
  void stopped(const GridRun* r) override { events.push_back({"stopped", r ? r->id : "", ""}); }
  void summary(const GridSummary& s) override { summaries.push_back(s); }

  std::vector<Event> of_kind(const std::string& kind) const {
    std::vector<Event> out;
    for (const auto& e : events)
      if (e.kind == kind) out.push_back(e);
    return out;
  }
};

GridOptions options(const std::atomic<bool>* stop = nullptr) {
  GridOptions o;
  o.stop = stop;
  o.threads = 1;
  return o;
}

// Runs the whole grid of `e` with `o`, told to `recorder`: the exit code.
int run_grid(const Experiment& e, Recorder& recorder, GridOptions o = options()) {
  GridResources shared;
  shared.registry = &registry();
  GridRunner runner(e, expand_grid(e), shared, o, {&recorder});
  return runner.run();
}

std::optional<RunRecord> record_of(const Experiment& e, const RunSpec& r) {
  if (!fs::exists(result_path(e, r))) return std::nullopt;
  return read_run_record(result_path(e, r));
}

std::size_t count_in_state(const Experiment& e, RunState state) {
  std::size_t n = 0;
  for (const auto& r : expand_grid(e)) {
    const auto rec = record_of(e, r);
    n += rec && rec->status == state;
  }
  return n;
}

std::string bytes_of(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A failed result file for `run`, as a run that stopped on an error leaves it.
void write_failure(const Experiment& e, const RunSpec& run, const std::string& reason,
                   const std::string& end_time) {
  RunRecord r;
  r.status = RunState::failed;
  r.failure_reason = reason;
  r.failed_step = 3;
  r.attributes = {{"run_id", run.id}, {"end_time", end_time}};
  fs::create_directories(e.output);
  write_run_record(result_path(e, run), r);
}

bool no_claim_files(const Experiment& e) {
  const fs::path folder = fs::path(e.output) / "claims";
  if (!fs::exists(folder)) return true;
  for (const auto& entry : fs::directory_iterator(folder))
    if (entry.path().extension() == ".claim") return false;
  return true;
}

}  // namespace

CATCH_TEST_CASE("a tiny grid trains every run once, and each ends complete on disk") {
  TempDir tmp("runner-all");
  const Experiment e = grid_of_seeds(tmp.path / "out");
  const auto runs = expand_grid(e);
  CATCH_REQUIRE(runs.size() == 2);
  Recorder seen;
  CATCH_CHECK(run_grid(e, seen) == 0);

  CATCH_CHECK(count_in_state(e, RunState::complete) == runs.size());
  for (const auto& r : runs) CATCH_CHECK(record_of(e, r)->epochs.size() == 1);
  // Started and ended once each, in grid order, each as complete.
  const auto started = seen.of_kind("started"), ended = seen.of_kind("ended");
  CATCH_REQUIRE(started.size() == runs.size());
  CATCH_REQUIRE(ended.size() == runs.size());
  for (std::size_t k = 0; k < runs.size(); ++k) {
    CATCH_CHECK(started[k].run_id == runs[k].id);
    CATCH_CHECK(started[k].detail == "[" + std::to_string(k + 1) + "/2]");
    CATCH_CHECK(ended[k].run_id == runs[k].id);
    CATCH_CHECK(ended[k].status == static_cast<int>(RunStatus::complete));
  }
  CATCH_REQUIRE(seen.summaries.size() == 1);
  const GridSummary& s = seen.summaries.front();
  CATCH_CHECK(s.trained == 2);
  CATCH_CHECK(s.already_complete + s.by_others + s.failed == 0);
  CATCH_CHECK(!s.stopped);
  CATCH_CHECK(s.train_seconds > 0);
  // A complete run keeps no claim file.
  CATCH_CHECK(no_claim_files(e));
}

CATCH_TEST_CASE("a second pass settles complete runs without touching their files") {
  TempDir tmp("runner-again");
  const Experiment e = grid_of_seeds(tmp.path / "out");
  Recorder first;
  CATCH_REQUIRE(run_grid(e, first) == 0);
  std::map<std::string, std::string> bytes;
  for (const auto& r : expand_grid(e)) bytes[r.id] = bytes_of(result_path(e, r));

  Recorder second;
  CATCH_CHECK(run_grid(e, second) == 0);
  CATCH_CHECK(second.of_kind("started").empty());
  const auto settled = second.of_kind("settled");
  CATCH_CHECK(settled.size() == bytes.size());
  for (const auto& s : settled)
    CATCH_CHECK(s.status == static_cast<int>(Settled::already_complete));
  CATCH_REQUIRE(second.summaries.size() == 1);
  CATCH_CHECK(second.summaries.front().already_complete == 2);
  CATCH_CHECK(second.summaries.front().trained == 0);
  for (const auto& r : expand_grid(e)) CATCH_CHECK(bytes_of(result_path(e, r)) == bytes[r.id]);
}

CATCH_TEST_CASE("a failed run is settled and counted, and the grid exits 1") {
  TempDir tmp("runner-failed");
  const Experiment e = grid_of_seeds(tmp.path / "out");
  const auto runs = expand_grid(e);
  write_failure(e, runs[0], "loss exploded", "2026-01-01T00:00:00Z");
  const std::string before = bytes_of(result_path(e, runs[0]));
  Recorder seen;
  CATCH_CHECK(run_grid(e, seen) == 1);
  CATCH_CHECK(bytes_of(result_path(e, runs[0])) == before);  // not trained again
  CATCH_CHECK(record_of(e, runs[1])->status == RunState::complete);
  const auto settled = seen.of_kind("settled");
  CATCH_REQUIRE(settled.size() == 1);
  CATCH_CHECK(settled[0].run_id == runs[0].id);
  CATCH_CHECK(settled[0].status == static_cast<int>(Settled::failed));
  CATCH_CHECK(settled[0].detail == "loss exploded");
  CATCH_REQUIRE(seen.summaries.size() == 1);
  CATCH_CHECK(seen.summaries.front().failed == 1);
  CATCH_CHECK(seen.summaries.front().trained == 1);
}

CATCH_TEST_CASE("retry_failed trains a failed run again only while its failure is the one seen") {
  TempDir tmp("runner-retry");
  const Experiment e = grid_of_seeds(tmp.path / "out", "[0]");
  const RunSpec run = expand_grid(e).at(0);
  write_failure(e, run, "loss exploded", "2026-01-01T00:00:00Z");
  GridOptions retry = options();
  retry.retry_failed = true;
  GridResources shared;
  shared.registry = &registry();
  Recorder seen;

  CATCH_SECTION("the failure seen at the start is retried: the run ends complete") {
    GridRunner runner(e, {run}, shared, retry, {&seen});
    CATCH_CHECK(runner.run() == 0);
    CATCH_CHECK(record_of(e, run)->status == RunState::complete);
    CATCH_CHECK(seen.of_kind("started").size() == 1);
    CATCH_REQUIRE(seen.summaries.size() == 1);
    CATCH_CHECK(seen.summaries.front().trained == 1);
    CATCH_CHECK(seen.summaries.front().failed == 0);
  }
  CATCH_SECTION("a failure written since (another process retried it) stands") {
    GridRunner runner(e, {run}, shared, retry, {&seen});
    write_failure(e, run, "loss exploded again", "2026-01-02T00:00:00Z");
    const std::string since = bytes_of(result_path(e, run));
    CATCH_CHECK(runner.run() == 1);
    CATCH_CHECK(bytes_of(result_path(e, run)) == since);
    CATCH_CHECK(seen.of_kind("started").empty());
    const auto settled = seen.of_kind("settled");
    CATCH_REQUIRE(settled.size() == 1);
    CATCH_CHECK(settled[0].detail == "loss exploded again");
    CATCH_REQUIRE(seen.summaries.size() == 1);
    CATCH_CHECK(seen.summaries.front().failed == 1);
  }
}

CATCH_TEST_CASE("the stop flag set mid-grid stops with 130, the run in training saved") {
  TempDir tmp("runner-stop");
  const Experiment e = grid_of_seeds(tmp.path / "out");
  const auto runs = expand_grid(e);
  std::atomic<bool> stop{false};
  Recorder seen;
  seen.on_step = [&](const RunProgress& p) {
    if (p.step == 2) stop = true;  // as Ctrl-C would, in the middle of the first run's epoch
  };
  CATCH_CHECK(run_grid(e, seen, options(&stop)) == 130);

  // The first run is saved where it stopped and resumes; the second was never started.
  const auto first = record_of(e, runs[0]);
  CATCH_REQUIRE(first);
  CATCH_CHECK(first->status == RunState::running);
  CATCH_CHECK(fs::exists(checkpoint_path(e, runs[0])));
  CATCH_CHECK(!record_of(e, runs[1]));
  // Its claim lets it go: the next process takes it at once.
  const auto board = ClaimFolder(e.output, kDefaultStaleAfterSeconds).snapshot();
  CATCH_REQUIRE(board.count(runs[0].id) == 1);
  CATCH_CHECK(board.at(runs[0].id).released);
  const auto ended = seen.of_kind("ended");
  CATCH_REQUIRE(ended.size() == 1);
  CATCH_CHECK(ended[0].status == static_cast<int>(RunStatus::interrupted));
  const auto stopped = seen.of_kind("stopped");
  CATCH_REQUIRE(stopped.size() == 1);
  CATCH_CHECK(stopped[0].run_id == runs[0].id);
  CATCH_REQUIRE(seen.summaries.size() == 1);
  CATCH_CHECK(seen.summaries.front().stopped);
  CATCH_CHECK(seen.summaries.front().trained == 0);

  // Without the flag, the next pass finishes both.
  Recorder again;
  CATCH_CHECK(run_grid(e, again) == 0);
  CATCH_CHECK(count_in_state(e, RunState::complete) == 2);
  CATCH_CHECK(again.of_kind("started").size() == 2);
}

CATCH_TEST_CASE("a run held by a live process is waited for, and trained once it is let go") {
  TempDir tmp("runner-wait");
  const Experiment e = grid_of_seeds(tmp.path / "out");
  const auto runs = expand_grid(e);
  write_foreign_claim(e.output, runs[0].id,
                      {4242, 1, 30, 0});  // a fresh heartbeat, from another machine
  GridOptions o = options();
  o.stale_after = 60;  // the claim stays live throughout; passes come every 2 s
  Recorder seen;
  seen.on_waiting = [&](const std::string&) {
    // The holder lets the run go: the next generation of its claim says released.
    const auto path = fs::path(e.output) / "claims" / (runs[0].id + ".2.claim");
    std::ofstream(path) << "run = " << runs[0].id
                        << "\nstate = released\nhost = elsewhere\npid = 4242\nheartbeat = 30\n";
  };
  CATCH_CHECK(run_grid(e, seen, o) == 0);

  CATCH_CHECK(count_in_state(e, RunState::complete) == 2);
  // The free run first, then a wait naming the holder, then the run it held.
  std::vector<std::string> order;
  for (const auto& ev : seen.events)
    if (ev.kind != "ended") order.push_back(ev.kind + " " + ev.run_id);
  CATCH_CHECK(order == std::vector<std::string>{"started " + runs[1].id, "waiting ",
                                                "started " + runs[0].id});
  const auto waiting = seen.of_kind("waiting");
  CATCH_REQUIRE(waiting.size() == 1);
  CATCH_CHECK(contains(waiting[0].detail, "1 run held by other processes"));
  CATCH_CHECK(contains(waiting[0].detail, "(" + runs[0].id + ") on elsewhere:4242"));
  CATCH_CHECK(seen.of_kind("taken_over").empty());  // let go, not taken
  CATCH_CHECK(no_claim_files(e));
}

CATCH_TEST_CASE("a stale claim is taken over and its run trained") {
  TempDir tmp("runner-stale");
  const Experiment e = grid_of_seeds(tmp.path / "out", "[0]");
  const RunSpec run = expand_grid(e).at(0);
  write_foreign_claim(e.output, run.id,
                      {4243, 1, 30, 600});  // silent for longer than stale_after (300 s)
  Recorder seen;
  CATCH_CHECK(run_grid(e, seen) == 0);
  CATCH_CHECK(record_of(e, run)->status == RunState::complete);
  const auto taken = seen.of_kind("taken_over");
  CATCH_REQUIRE(taken.size() == 1);
  CATCH_CHECK(taken[0].run_id == run.id);
  CATCH_CHECK(contains(taken[0].detail, "took over the stale claim of elsewhere:4243"));
  CATCH_CHECK(contains(taken[0].detail, "no heartbeat for"));
  CATCH_CHECK(seen.of_kind("waiting").empty());
  CATCH_CHECK(no_claim_files(e));
}

CATCH_TEST_CASE("a worker's events reach its parent as the runner reported them") {
  TempDir tmp("runner-events");
  const Experiment e = grid_of_seeds(tmp.path / "out", "[0]");
  const RunSpec run = expand_grid(e).at(0);
  int fds[2];
  CATCH_REQUIRE(::pipe(fds) == 0);
  {
    WorkerEventSender sender(fds[1]);
    GridResources shared;
    shared.registry = &registry();
    GridRunner runner(e, {run}, shared, options(), {&sender});
    CATCH_CHECK(runner.run() == 0);
  }
  ::close(fds[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
    text.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);

  std::vector<WorkerEvent> events;
  for (std::size_t at = 0, nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1) {
    auto ev = parse_worker_event(text.substr(at, nl - at));
    CATCH_REQUIRE(ev);
    events.push_back(*ev);
  }
  CATCH_REQUIRE(events.size() >= 4);  // start, the last step at least, end, summary
  CATCH_CHECK(events.front().kind == WorkerEventKind::start);
  CATCH_CHECK(events.front().run.id == run.id);
  CATCH_CHECK(events.front().run.tag() == "[1/1]");
  CATCH_CHECK(events.front().run.label == describe_run(e, run));
  const WorkerEvent& last_step = events[events.size() - 3];
  CATCH_CHECK(last_step.kind == WorkerEventKind::step);
  CATCH_CHECK(last_step.run.id == run.id);
  // 64 images in batches of 16: the epoch's last step is its fourth.
  CATCH_CHECK(last_step.progress.step == 4);
  CATCH_CHECK(last_step.progress.steps == 4);
  CATCH_CHECK(last_step.progress.epoch == 1);
  const WorkerEvent& end = events[events.size() - 2];
  CATCH_CHECK(end.kind == WorkerEventKind::end);
  CATCH_CHECK(end.status == RunStatus::complete);
  CATCH_CHECK(end.text.rfind("[1/1] " + describe_run(e, run) + " (" + run.id + "): done in", 0) ==
              0);
  const WorkerEvent& summary = events.back();
  CATCH_CHECK(summary.kind == WorkerEventKind::summary);
  CATCH_CHECK(summary.summary.trained == 1);
  CATCH_CHECK(summary.summary.failed == 0);
  CATCH_CHECK(summary.summary.train_seconds > 0);
}

CATCH_TEST_CASE("an event line keeps its fields apart, and a line that is no event is refused") {
  WorkerEvent note;
  note.kind = WorkerEventKind::note;
  note.text = "a\ttab and a\nnewline";
  const std::string line = format_worker_event(note);
  CATCH_CHECK(line == "note\ta tab and a newline\n");
  const auto back = parse_worker_event(line.substr(0, line.size() - 1));
  CATCH_REQUIRE(back);
  CATCH_CHECK(back->kind == WorkerEventKind::note);
  CATCH_CHECK(back->text == "a tab and a newline");

  WorkerEvent end;
  end.kind = WorkerEventKind::end;
  end.run.id = "abc123";
  end.status = RunStatus::taken_over;
  end.text = "[2/3] x (abc123): taken over";
  const auto parsed =
      parse_worker_event(format_worker_event(end).substr(0, format_worker_event(end).size() - 1));
  CATCH_REQUIRE(parsed);
  CATCH_CHECK(parsed->status == RunStatus::taken_over);
  CATCH_CHECK(parsed->run.id == "abc123");

  CATCH_CHECK(!parse_worker_event("stride\tx"));                   // no such kind
  CATCH_CHECK(!parse_worker_event("end\tabc123\tcomplete"));       // too few fields
  CATCH_CHECK(!parse_worker_event("end\tabc123\tdone\tmessage"));  // no such status
  CATCH_CHECK(!parse_worker_event(""));
}

CATCH_TEST_CASE("workers get their devices in turn, one per rank") {
  CATCH_CHECK(worker_devices({"cpu"}, "cuda", 3, 1) ==
              std::vector<std::string>{"cpu", "cpu", "cpu"});
  CATCH_CHECK(worker_devices({}, "cpu", 2, 2) == std::vector<std::string>{"cpu+cpu", "cpu+cpu"});
  CATCH_CHECK(rank_device_kind("cpu+cpu") == "cpu");
  CATCH_CHECK(rank_device_kind("cuda:2+cuda:3") == "cuda");
  CATCH_CHECK(rank_device_kind("cuda:1") == "cuda:1");
  CATCH_CHECK(visible_gpus("cuda:2+cuda:3") == "2,3");
  CATCH_CHECK(visible_gpus("cuda:1").empty());
  CATCH_CHECK(visible_gpus("cpu+cpu").empty());
  CATCH_CHECK_THROWS_AS(rank_device_kind("cpu+cuda:0"), ConfigError);
}

CATCH_TEST_CASE("each run-state word reads back as its state, and no other word does") {
  for (RunState s : {RunState::pending, RunState::running, RunState::stale, RunState::complete,
                     RunState::failed})
    CATCH_CHECK((parse_run_state(to_string(s)) == s));
  for (RunStatus s : {RunStatus::complete, RunStatus::skipped, RunStatus::failed,
                      RunStatus::interrupted, RunStatus::taken_over})
    CATCH_CHECK((parse_run_status(to_string(s)) == s));
  CATCH_CHECK(!parse_run_state("done"));
  CATCH_CHECK(!parse_run_status("pending"));
  // The words result files have always held.
  CATCH_CHECK(std::string(to_string(RunState::complete)) == "complete");
  CATCH_CHECK(std::string(to_string(RunState::failed)) == "failed");
  CATCH_CHECK(std::string(to_string(RunState::running)) == "running");
}
