// The words of a run's life, each enum with its names beside it (as fastText's args.cc keeps
// them): the result store writes them, `flatface status` and the reports print them, the grid
// runner and its workers decide and talk with them. No other file spells them.
//
// Two enums, because they answer two questions. RunState: where does a run stand? Its result file
// records running, complete or failed; `flatface status` adds what the claims say (pending: no
// process holds an unfinished run; stale: its holder has gone silent). RunStatus: how did one
// training session of a run end? A session may end without changing the run's state, which is
// why its words are not states: skipped (the run was complete already), interrupted (saved, the
// run resumes) and taken_over (another process holds the run now).
#pragma once

#include <optional>
#include <string>

namespace flatface {

enum class RunState {
  pending,   // no result yet, or unfinished and free (resumes from its checkpoint)
  running,   // a result file's word for an unfinished run; for status: claimed, heartbeat fresh
  stale,     // claimed, but the holder went silent or has exited: free to take over
  complete,  // every epoch trained and recorded
  failed,    // stopped by an error (failure_reason says which); --retry-failed trains it again
};
const char* to_string(RunState s);
// The state named `word` ("complete"); nullopt for any other word.
std::optional<RunState> parse_run_state(const std::string& word);

// taken_over: another process took this run's claim over (this one was paused for longer than
// the claim's stale-after); nothing was written after that.
enum class RunStatus { complete, skipped, failed, interrupted, taken_over };
const char* to_string(RunStatus s);
std::optional<RunStatus> parse_run_status(const std::string& word);

}  // namespace flatface
