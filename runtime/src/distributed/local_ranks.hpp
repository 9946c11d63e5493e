// `flatface run x.toml --nproc N`: N ranks on this machine, started as torchrun would start them
// (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT of a free
// port), each a copy of this program with the same arguments.
#pragma once

#include <string>
#include <vector>

#include "distributed/launch_env.hpp"

namespace flatface::distributed {

// Runs `program args...` as ranks 0..nproc-1 and waits for them. When one exits non-zero or dies,
// the others are stopped (SIGTERM, SIGKILL after `grace_seconds`). Returns 0 when all succeed,
// else the first failure's exit status (128 + signal for a rank killed by a signal). SIGINT and
// SIGTERM sent to this process are passed on to the ranks (which save and stop).
int run_local_ranks(const std::string& program, const std::vector<std::string>& args, int nproc,
                    double grace_seconds = 10);

// A TCP port on 127.0.0.1 that nothing listens on now.
int free_local_port();

// This process's arguments as it was started (/proc/self/cmdline, the program left out), less
// `option` and its value ("--nproc 4" or "--nproc=4"): what each rank of it runs.
std::vector<std::string> own_arguments_without(const std::string& option);

// The device of this rank: cuda:LOCAL_RANK where the run trains on CUDA (`resolved_device` is
// "cuda"), else `resolved_device` itself.
std::string rank_device(const std::string& resolved_device, const LaunchEnv& env);

}  // namespace flatface::distributed
