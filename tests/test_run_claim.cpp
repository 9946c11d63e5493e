// Run claims: exactly one process wins a free or a stale claim, however many try at once; a live
// holder keeps its claim fresh; a holder learns when its claim was taken over.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catch_compat.hpp"
#include "cli_test_support.hpp"
#include "flatface/options.hpp"
#include "grid/run_claim.hpp"

using namespace flatface;
using namespace flatface::testing;

namespace {

std::vector<std::string> claim_files(const fs::path& output) {
  std::vector<std::string> names;
  if (!fs::exists(output / "claims")) return names;
  for (const auto& entry : fs::directory_iterator(output / "claims"))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// `n` processes try to claim `run` at the same moment; returns how many won. Each winner holds
// its claim until every child has tried.
int race(const fs::path& output, const std::string& run, int n, double stale_after) {
  int go[2], done[2];
  CATCH_REQUIRE(::pipe(go) == 0);
  CATCH_REQUIRE(::pipe(done) == 0);
  std::vector<pid_t> children;
  for (int k = 0; k < n; ++k) {
    pid_t pid = ::fork();
    CATCH_REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(go[1]);
      ::close(done[1]);
      char c;
      if (::read(go[0], &c, 1) != 1) ::_exit(3);  // everyone starts together
      ClaimFolder claims(output.string(), stale_after);
      auto board = claims.snapshot();
      std::optional<ClaimInfo> known;
      if (board.count(run)) known = board.at(run);
      auto held = claims.acquire(run, known);
      if (::read(done[0], &c, 1) < 0) ::_exit(3);  // hold it until all have tried
      ::_exit(held ? 0 : 1);
    }
    children.push_back(pid);
  }
  ::close(go[0]);
  ::close(done[0]);
  CATCH_REQUIRE(::write(go[1], std::string(static_cast<std::size_t>(n), 'x').data(),
                        static_cast<std::size_t>(n)) == n);
  ::close(go[1]);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ::close(done[1]);  // end of file: every child lets go
  int winners = 0;
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    CATCH_REQUIRE(WIFEXITED(status));
    CATCH_REQUIRE(WEXITSTATUS(status) <= 1);
    winners += WEXITSTATUS(status) == 0;
  }
  return winners;
}

}  // namespace

CATCH_TEST_CASE("of many processes that claim a free run at once, exactly one wins") {
  TempDir tmp("claim");
  CATCH_CHECK(race(tmp.path, "run0", 8, 300) == 1);
  // The winner exited without release(): its process is gone, and its generation 1 stays.
  auto files = claim_files(tmp.path);
  CATCH_CHECK(std::count(files.begin(), files.end(), "run0.1.claim") == 1);
}

CATCH_TEST_CASE("of many processes that take over a stale claim at once, exactly one wins") {
  TempDir tmp("claim");
  write_foreign_claim(tmp.path, "run0", {4242, 1, 1, 600});  // ten minutes without a heartbeat
  CATCH_CHECK(race(tmp.path, "run0", 8, 300) == 1);
  CATCH_CHECK(fs::exists(tmp.path / "claims" / "run0.2.claim"));
  CATCH_CHECK_FALSE(fs::exists(tmp.path / "claims" / "run0.3.claim"));
}

CATCH_TEST_CASE("a fresh claim of another machine is left alone, and its holder is named") {
  TempDir tmp("claim");
  write_foreign_claim(tmp.path, "run0", {4242, 1, 1, 2});
  ClaimFolder claims(tmp.str(), 300);
  auto board = claims.snapshot();
  CATCH_REQUIRE(board.count("run0") == 1);
  CATCH_CHECK(board.at("run0").heartbeat_age < 30);
  CATCH_CHECK(board.at("run0").heartbeat_age > 1);
  CATCH_CHECK_FALSE(claims.stale(board.at("run0")));
  std::optional<ClaimInfo> busy;
  CATCH_CHECK(claims.acquire("run0", board.at("run0"), &busy) == nullptr);
  CATCH_REQUIRE(busy);
  CATCH_CHECK(busy->holder() == "elsewhere:4242");
  // Even if the snapshot was too old to know of it, the claim's generation cannot be won again.
  CATCH_CHECK(claims.acquire("run0", std::nullopt) == nullptr);
}

CATCH_TEST_CASE("a holder that refreshes its heartbeat stays fresh past stale-after") {
  TempDir tmp("claim");
  ClaimFolder claims(tmp.str(), 0.5);  // a heartbeat every 0.05 s
  auto held = claims.acquire("run0", std::nullopt);
  CATCH_REQUIRE(held);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  auto board = claims.snapshot();
  CATCH_CHECK(board.at("run0").heartbeat_age < 0.5);
  CATCH_CHECK_FALSE(claims.stale(board.at("run0")));
  CATCH_CHECK(held->still_held());
}

CATCH_TEST_CASE("a holder's heartbeat interval counts, whatever stale-after the reader uses") {
  TempDir tmp("claim");
  write_foreign_claim(tmp.path, "run0", {4242, 1, 1, 2});  // heartbeat every 1 s, last one 2 s ago
  CATCH_CHECK_FALSE(
      ClaimFolder(tmp.str(), 0.5).stale(ClaimFolder(tmp.str(), 0.5).snapshot().at("run0")));
  write_foreign_claim(tmp.path, "run1", {4242, 1, 1, 4});  // more than three intervals: stale
  CATCH_CHECK(ClaimFolder(tmp.str(), 0.5).stale(ClaimFolder(tmp.str(), 0.5).snapshot().at("run1")));
}

CATCH_TEST_CASE("the claim of a process of this machine that has exited is stale at once") {
  TempDir tmp("claim");
  pid_t pid = ::fork();
  CATCH_REQUIRE(pid >= 0);
  if (pid == 0) {
    ClaimFolder claims(tmp.str(), 300);
    auto held = claims.acquire("run0", std::nullopt);
    ::_exit(held ? 0 : 1);  // killed, in effect: no release
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  CATCH_REQUIRE(WEXITSTATUS(status) == 0);
  ClaimFolder claims(tmp.str(), 300);
  auto board = claims.snapshot();
  CATCH_REQUIRE(board.count("run0") == 1);
  CATCH_CHECK(board.at("run0").heartbeat_age < 300);
  CATCH_CHECK(claims.stale(board.at("run0")));
  auto taken = claims.acquire("run0", board.at("run0"));
  CATCH_REQUIRE(taken);
  CATCH_CHECK(taken->info().generation == 2);
}

CATCH_TEST_CASE("a holder learns that its claim was taken over, and leaves the new holder alone") {
  TempDir tmp("claim");
  ClaimFolder mine(tmp.str(), 300);
  auto held = mine.acquire("run0", std::nullopt);
  CATCH_REQUIRE(held);
  CATCH_CHECK(held->still_held());
  // Another process saw generation 1 as stale (this one was paused) and took generation 2.
  ClaimFolder other(tmp.str(), 300);
  ClaimInfo seen = other.snapshot().at("run0");
  seen.heartbeat_age = 1e6;
  auto taken = other.acquire("run0", seen);
  CATCH_REQUIRE(taken);
  CATCH_CHECK_FALSE(held->still_held());
  held->release();  // generation 2 is the taker's: releasing writes nothing over it
  auto board = other.snapshot();
  CATCH_CHECK(board.at("run0").generation == 2);
  CATCH_CHECK_FALSE(board.at("run0").released);
  CATCH_CHECK(taken->still_held());
}

CATCH_TEST_CASE("a released claim is free again, and a complete run's claim files are removed") {
  TempDir tmp("claim");
  ClaimFolder claims(tmp.str(), 300);
  auto first = claims.acquire("run0", std::nullopt);
  auto other_run = claims.acquire("run1", std::nullopt);
  CATCH_REQUIRE(first);
  CATCH_REQUIRE(other_run);
  first->release();
  auto board = claims.snapshot();
  CATCH_CHECK(board.at("run0").released);
  CATCH_CHECK(board.at("run0").generation == 2);
  auto second = claims.acquire("run0", board.at("run0"));
  CATCH_REQUIRE(second);
  CATCH_CHECK(second->info().generation == 3);
  second->complete(claims);
  CATCH_CHECK(claim_files(tmp.path) == std::vector<std::string>{"run1.1.claim"});
  CATCH_CHECK(claims.seconds_spent() > 0);
}

CATCH_TEST_CASE("a non-positive stale-after is a configuration error") {
  CATCH_CHECK_THROWS_AS(ClaimFolder("out", 0), ConfigError);
  CATCH_CHECK_THROWS_AS(ClaimFolder("out", -5), ConfigError);
}
