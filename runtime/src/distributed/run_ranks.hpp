// The ranks the current run trains on, as the SDK's collectives (flatface/collectives.hpp) see
// them: set for the span of a data-parallel run by a RunRanks scope, none otherwise.
#pragma once

#include "distributed/communicator.hpp"

namespace flatface::distributed {

class RunRanks {
 public:
  explicit RunRanks(Communicator* ranks);  // nullptr: one process
  ~RunRanks();
  RunRanks(const RunRanks&) = delete;
  RunRanks& operator=(const RunRanks&) = delete;

 private:
  Communicator* previous_;
};

// The communicator of the run in progress, or nullptr.
Communicator* run_ranks();

}  // namespace flatface::distributed
