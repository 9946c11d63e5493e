#include "distributed/launch_env.hpp"

#include <cstdlib>
#include <limits>

#include "flatface/options.hpp"

namespace flatface::distributed {

namespace {

long parse_number(const std::string& name, const std::string& text, long lo, long hi) {
  std::size_t used = 0;
  long v = 0;
  try {
    v = std::stol(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || v < lo || v > hi)
    throw ConfigError("environment variable " + name + "='" + text + "': expected an integer in [" +
                      std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  // The first entry ends at the first comma outside brackets.
  std::string first;
  int depth = 0;
  for (char c : nodelist) {
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (c == ',' && depth == 0) break;
    first += c;
  }
  const auto open = first.find('[');
  if (open == std::string::npos) return first;
  // "node[01-04,07]": the prefix and the first number of the range, zero padding kept.
  const std::string prefix = first.substr(0, open);
  std::string range = first.substr(open + 1);
  const auto end = range.find_first_of(",-]");
  const std::string suffix_after = first.substr(first.find(']') + 1);
  return prefix + range.substr(0, end) + suffix_after;
}

// The variables each launcher sets, in the order they are looked for.
struct LauncherVariables {
  const char* source;
  const char* world;
  const char* rank;
  const char* local_rank;
};
constexpr LauncherVariables kLaunchers[] = {
    {"torchrun", "WORLD_SIZE", "RANK", "LOCAL_RANK"},
    {"slurm", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID"},
};

std::optional<LaunchEnv> launch_from_environment(const EnvLookup& getenv) {
  LaunchEnv env;
  const int max_int = std::numeric_limits<int>::max();
  const LauncherVariables* launcher = nullptr;
  for (const auto& l : kLaunchers) {
    auto world = getenv(l.world);
    if (!world) continue;
    launcher = &l;
    env.source = l.source;
    env.world_size = static_cast<int>(parse_number(l.world, *world, 1, max_int));
    auto rank = getenv(l.rank);
    if (!rank) throw ConfigError(std::string(l.world) + " is set but " + l.rank + " is not");
    env.rank = static_cast<int>(parse_number(l.rank, *rank, 0, env.world_size - 1));
    auto local = getenv(l.local_rank);
    env.local_rank = local ? static_cast<int>(parse_number(l.local_rank, *local, 0, max_int)) : 0;
    break;
  }
  if (!launcher) return std::nullopt;
  if (auto addr = getenv("MASTER_ADDR")) {
    env.master_addr = *addr;
  } else if (env.source == "slurm") {
    auto nodes = getenv("SLURM_JOB_NODELIST");
    if (!nodes && env.world_size > 1)
      throw ConfigError("a Slurm launch of " + std::to_string(env.world_size) +
                        " tasks without SLURM_JOB_NODELIST or MASTER_ADDR: cannot find rank 0");
    if (nodes) env.master_addr = first_slurm_host(*nodes);
  }
  auto agent = getenv("TORCHELASTIC_USE_AGENT_STORE");
  if (env.source == "torchrun" && agent && *agent == "True") {
    env.agent_store = true;
    auto attempt = getenv("TORCHELASTIC_RESTART_COUNT");
    env.store_prefix = "/worker/attempt_" + (attempt ? *attempt : std::string("0")) + "/";
  }
  if (auto port = getenv("MASTER_PORT"))
    env.master_port = static_cast<std::uint16_t>(parse_number("MASTER_PORT", *port, 1, 65535));
  if (env.world_size == 1) return std::nullopt;
  return env;
}

std::optional<LaunchEnv> launch_from_environment() {
  return launch_from_environment([](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v || !*v) return std::nullopt;
    return std::string(v);
  });
}

}  // namespace flatface::distributed
