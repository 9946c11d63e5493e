// flatface status results/x/ | x.toml: one row per run of the grid (pending, running where,
// stale, complete, failed) with its latest accuracy; counts and an ETA. Exit 0 when every run is
// complete, 1 otherwise.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "common.hpp"
#include "grid/grid_status.hpp"
#include "training/trainer.hpp"

namespace flatface::cli {

namespace {

namespace fs = std::filesystem;

struct StatusArgs {
  std::string target;  // a results folder or an experiment file
  std::vector<std::string> overrides;
  bool json = false;
  bool watch = false;
  double interval = 5;
  double stale_after = kDefaultStaleAfterSeconds;
};
StatusArgs status_args;

std::atomic<bool> g_stop_watching{false};
extern "C" void on_watch_interrupt(int) {
  g_stop_watching = true;
}

// "7s", "12m05s"
std::string age_text(double seconds) {
  if (seconds < 59.5) return std::to_string(static_cast<long long>(seconds + 0.5)) + "s";
  return format_duration(seconds);
}

std::string percent(double fraction) {
  if (!std::isfinite(fraction)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100 * fraction);
  return buf;
}

std::string state_text(const ClaimFolder& claims, const RunStanding& r) {
  const std::string state = to_string(r.state);
  switch (r.state) {
    case RunState::complete:
      return state;
    case RunState::failed:
      return state + ": " + r.failure_reason;
    case RunState::pending:
      return r.has_checkpoint && r.epochs_done < r.epochs
                 ? state + " (resumes at epoch " + std::to_string(r.epochs_done + 1) + "/" +
                       std::to_string(r.epochs) + ")"
                 : state;
    case RunState::running:
      return state + " on " + r.claim->holder() + ", epoch " +
             std::to_string(std::min(r.epochs_done + 1, r.epochs)) + "/" +
             std::to_string(r.epochs) + ", heartbeat " + age_text(r.claim->heartbeat_age) + " ago";
    case RunState::stale:
      return state + ": " + r.claim->holder() +
             (claims.staleness(*r.claim) == ClaimFolder::Staleness::exited
                  ? ", its process has exited"
                  : ", no heartbeat for " + age_text(r.claim->heartbeat_age)) +
             " (the next process takes it over)";
  }
  return "?";
}

std::string footer(const GridStanding& g) {
  std::ostringstream s;
  s << g.runs.size() << " runs: " << g.count(RunState::complete) << " complete, "
    << g.count(RunState::running) << " running, " << g.count(RunState::stale) << " stale, "
    << g.count(RunState::failed) << " failed, " << g.count(RunState::pending) << " pending";
  if (!g.all_complete()) {
    const std::size_t running = std::max<std::size_t>(1, g.count(RunState::running));
    s << "; ETA ";
    if (std::isfinite(g.eta_seconds))
      s << format_duration(g.eta_seconds) << " (" << running << (running == 1 ? " run" : " runs")
        << " at a time)";
    else
      s << "unknown (no epoch timed yet)";
  }
  return s.str();
}

// The setup and its swept values besides rho: "SAM-ArcFace head.m=0.3".
std::string swept_setup_label(const RunStanding& r) {
  const std::string swept = swept_label(r.spec);
  return swept.empty() ? r.setup : r.setup + " " + swept;
}

std::string render_text(const GridStanding& g, const ClaimFolder& claims) {
  std::vector<std::vector<std::string>> rows{
      {"run", "setup", "seed", "rho", "epochs", "accuracy", "state"}};
  for (const auto& r : g.runs)
    rows.push_back({r.spec.id, swept_setup_label(r), std::to_string(r.spec.seed),
                    r.spec.rho ? format_rho(*r.spec.rho) : "-",
                    std::to_string(r.epochs_done) + "/" + std::to_string(r.epochs),
                    percent(r.accuracy), state_text(claims, r)});
  std::vector<std::size_t> width(rows[0].size(), 0);
  for (const auto& row : rows)
    for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  std::ostringstream s;
  s << g.experiment << ": " << g.runs.size() << " runs in " << g.output << " (stale after "
    << age_text(g.stale_after) << " without a heartbeat)\n";
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t c = 0; c < row.size(); ++c) {
      std::string cell = row[c];
      if (c + 1 < row.size()) cell.resize(width[c] + 2, ' ');
      line += cell;
    }
    s << line << '\n';
  }
  s << footer(g) << '\n';
  return s.str();
}

// Who holds a running or stale run's claim; null for the others.
nlohmann::ordered_json holder_json(const std::optional<ClaimInfo>& claim) {
  if (!claim) return nullptr;
  return {{"host", claim->host},
          {"pid", claim->pid},
          {"job", claim->job},
          {"started", claim->started},
          {"heartbeat_age", json_number(claim->heartbeat_age, 10)}};
}

std::string render_json(const GridStanding& g) {
  nlohmann::ordered_json runs = nlohmann::ordered_json::array();
  for (const auto& r : g.runs)
    runs.push_back({{"id", r.spec.id},
                    {"setup", r.setup},
                    {"seed", r.spec.seed},
                    {"rho", r.spec.rho ? json_number(*r.spec.rho, 10) : nullptr},
                    {"state", to_string(r.state)},
                    {"epochs_done", r.epochs_done},
                    {"epochs", r.epochs},
                    {"accuracy", json_number(r.accuracy, 10)},
                    {"resumable", r.has_checkpoint},
                    {"failure_reason", r.failure_reason},
                    {"holder", holder_json(r.claim)}});
  nlohmann::ordered_json counts = nlohmann::ordered_json::object();
  for (RunState state : {RunState::pending, RunState::running, RunState::stale, RunState::complete,
                         RunState::failed})
    counts[to_string(state)] = g.count(state);
  const nlohmann::ordered_json out{{"experiment", g.experiment},
                                   {"output", g.output},
                                   {"stale_after", json_number(g.stale_after, 10)},
                                   {"runs", runs},
                                   {"counts", counts},
                                   {"eta_seconds", json_number(g.eta_seconds, 10)},
                                   {"complete", g.all_complete()}};
  return out.dump(2) + "\n";
}

int status(const StatusArgs& a) {
  std::error_code ec;
  Experiment e;
  std::string output;
  if (fs::is_directory(a.target, ec)) {
    if (!a.overrides.empty())
      throw ConfigError("--set applies to an experiment file, not to a results folder");
    e = experiment_of_results(a.target);
    output = a.target;
  } else {
    e = load_experiment(a.target, a.overrides);
    output = e.output;
  }
  ClaimFolder claims(output, a.stale_after);
  if (a.watch) std::signal(SIGINT, on_watch_interrupt);
  const bool terminal = ::isatty(STDOUT_FILENO) == 1;
  for (;;) {
    GridStanding g = grid_standing(e, output, claims);
    const std::string text = a.json ? render_json(g) : render_text(g, claims);
    if (a.watch && terminal) std::cout << "\x1b[H\x1b[2J";
    std::cout << text << std::flush;
    if (!a.watch || g.all_complete()) return g.all_complete() ? 0 : 1;
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(a.interval);
    while (!g_stop_watching && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (g_stop_watching) return 1;
    if (!terminal) std::cout << '\n';
  }
}

}  // namespace

void status_options(CLI::App& cmd) {
  cmd.add_option("target", status_args.target, "A results folder, or the experiment file")
      ->required()
      ->check(CLI::ExistingPath);
  cmd.add_option("--set", status_args.overrides,
                 "Override KEY=VALUE of the experiment file, as given to run (repeatable)");
  cmd.add_flag("--json", status_args.json, "JSON for scripts");
  cmd.add_flag("--watch", status_args.watch, "Refresh until every run is complete (Ctrl-C stops)");
  cmd.add_option("--interval", status_args.interval,
                 "Seconds between refreshes with --watch (default 5)")
      ->check(positive_seconds());
  cmd.add_option("--stale-after", status_args.stale_after,
                 "Seconds without a heartbeat after which a claim counts as stale (default 300)")
      ->check(positive_seconds());
}

int status_command(const Globals&) {
  return status(status_args);
}

}  // namespace flatface::cli
