// Where this process stands in a data-parallel run, read from the launcher's environment:
// torchrun's RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT, else Slurm's
// SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID with the first host of SLURM_JOB_NODELIST as the
// master, as torch.distributed and insightface's launch scripts read them.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace flatface::distributed {

// The master's port where the environment names none (MASTER_PORT): torchrun's default.
inline constexpr std::uint16_t kDefaultMasterPort = 29500;

struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // the rank among those on this machine: its device is cuda:local_rank
  std::string master_addr = "127.0.0.1";
  std::uint16_t master_port = kDefaultMasterPort;
  std::string source;  // "torchrun" | "slurm", for messages
  // torchrun's agent serves the store itself (TORCHELASTIC_USE_AGENT_STORE=True): every rank is a
  // client, and keys live under "/worker/attempt_<TORCHELASTIC_RESTART_COUNT>/", as in PyTorch.
  bool agent_store = false;
  std::string store_prefix;
};

// nullopt when no launcher set the variables, or when it started a single rank. `getenv` is
// injectable for tests; a malformed value is a ConfigError naming the variable.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
std::optional<LaunchEnv> launch_from_environment(const EnvLookup& getenv);
std::optional<LaunchEnv> launch_from_environment();

// The first host of a Slurm node list: "node[01-04,07],gpu3" -> "node01"; "a,b" -> "a".
std::string first_slurm_host(const std::string& nodelist);

}  // namespace flatface::distributed
