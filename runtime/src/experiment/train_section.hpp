// The [train] table (internal to experiment/): read, checked, and which keys run ids leave out.
#pragma once

#include <set>
#include <string>

#include "experiment/experiment.hpp"

namespace flatface {

// Reads every [train] key into TrainSettings (defaults for the missing ones) and checks the values
// (epochs, batch_size and lr positive, warmup_epochs >= 0). Leaves check_all_used() to the caller.
TrainSettings parse_train(const Options& o);

// [train] keys that change nothing a run learns (when it evaluates, logs, how many threads load).
// They are not part of run ids, so they cannot be swept.
extern const std::set<std::string> kRunNeutralTrainKeys;

}  // namespace flatface
