// Run claims: which process trains which run of a grid, when several `flatface run` processes, on
// one machine or on many that share the output folder, work through the same grid.
//
// A claim is a file <output>/claims/<run_id>.<generation>.claim; the newest generation is the
// run's claim. A process claims a free run by creating the next generation (generation 1 when
// there is none), and takes a stale claim over the same way. Files are created exclusively
// (O_CREAT | O_EXCL: atomic on local file systems and on NFS v3 and later, where flock may not
// work), so exactly one process wins each generation; generations are never deleted while the
// run is unfinished, so a process that looked at an old generation cannot win a newer one. The
// holder refreshes the file's modification time (its heartbeat) from a thread. Letting a run go
// (interrupted, failed) creates one more generation that says `released`; a complete run's claim
// files are removed.
//
// A claim is stale when its heartbeat is older than `stale_after` (and than three of the holder's
// heartbeat intervals, which it writes in the claim: processes started with different settings
// still agree), measured on the file system's clock (hosts with skewed clocks still agree), or at
// once when its holder was a process of this machine that no longer exists.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "results/run_state.hpp"

namespace flatface {

// Five minutes: NFS clients may see a file's modification time up to a minute late (attribute
// caching), and a heartbeat every 30 s must be missed many times before a run changes hands.
constexpr double kDefaultStaleAfterSeconds = 300;

// What a claim file says, and how old its heartbeat is.
struct ClaimInfo {
  std::string run_id;
  std::int64_t generation = 0;
  bool released = false;  // a generation that lets the run go; the run is free
  std::string host;
  std::int64_t pid = 0;
  std::string started;            // UTC, ISO 8601
  std::string job;                // the Slurm job (array job_task) the holder runs in, if any
  double heartbeat_interval = 0;  // seconds between the holder's heartbeats
  // To tell, on the same machine, whether the holder still exists (pid reuse included).
  std::string boot_id, pid_namespace, pid_start;
  double heartbeat_age = 0;  // seconds, on the file system's clock
  std::string path;

  std::string holder() const;  // "host:pid" (plus " (slurm JOB)" when set)
};

// This process, as a claim file describes it.
ClaimInfo this_process();

class HeldClaim;

// The claims of one output folder.
class ClaimFolder {
 public:
  ClaimFolder(const std::string& output, double stale_after_seconds);

  // The newest generation of every run that has claim files, with heartbeat ages. One listing of
  // the folder; cheap enough to call once per pass over a grid.
  std::map<std::string, ClaimInfo> snapshot() const;

  // Silent: the heartbeat is older than stale_after and three heartbeat intervals of the
  // holder. Exited: the holder was a process of this machine that has gone. Either is stale.
  enum class Staleness { live, silent, exited };
  Staleness staleness(const ClaimInfo& claim) const;
  bool stale(const ClaimInfo& claim) const { return staleness(claim) != Staleness::live; }
  // The state a claim gives an unfinished run: pending when it lets the run go (released),
  // stale when its holder went silent or has exited, else running.
  RunState state(const ClaimInfo& claim) const;

  // Claims `run_id` for this process: when it has no claim, when its claim is released, or by
  // taking over a stale claim. `known` is the run's entry of a recent snapshot (nullopt: none).
  // Returns nothing when another process holds the run or wins the race for it; `busy` then tells
  // who holds it, when that is known.
  std::unique_ptr<HeldClaim> acquire(const std::string& run_id,
                                     const std::optional<ClaimInfo>& known,
                                     std::optional<ClaimInfo>* busy = nullptr);

  // Removes the claim files of a complete run.
  void remove_all(const std::string& run_id);

  double stale_after() const { return stale_after_; }
  // A tenth of stale_after, at most 30 s.
  double heartbeat_interval() const;
  const std::string& folder() const { return folder_; }
  // Seconds this process spent on claims (creating, listing, heartbeats): the cost of sharing.
  double seconds_spent() const;

 private:
  double filesystem_clock_offset() const;  // file system now - local now, in seconds
  std::string folder_;
  double stale_after_;
  mutable std::optional<double> clock_offset_;
  mutable double clock_measured_ = 0;  // local time of the measurement
  mutable std::shared_ptr<std::atomic<std::int64_t>> nanoseconds_;
};

// A claim this process holds. Its thread refreshes the heartbeat and notices when another process
// has taken the claim over (this process was paused for longer than stale_after). Destroying it
// without release() or complete() releases it.
class HeldClaim {
 public:
  HeldClaim(ClaimInfo info, std::string next_path, double heartbeat_seconds,
            std::shared_ptr<std::atomic<std::int64_t>> nanoseconds);
  ~HeldClaim();
  HeldClaim(const HeldClaim&) = delete;
  HeldClaim& operator=(const HeldClaim&) = delete;

  // Asks the file system: this generation is still there and no newer one exists.
  bool still_held() const;
  // Lets the run go (interrupted, failed): one more generation marked released.
  void release();
  // The run is complete: removes every claim file of the run.
  void complete(ClaimFolder& folder);

  const ClaimInfo& info() const { return info_; }

 private:
  void heartbeat_loop();
  void stop_heartbeat();

  ClaimInfo info_;
  std::string next_path_;
  double interval_;
  std::shared_ptr<std::atomic<std::int64_t>> nanoseconds_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace flatface
