#include "results/run_state.hpp"

#include <utility>

namespace flatface {

namespace {

// One table per enum: to_string and parse both read it.
constexpr std::pair<RunState, const char*> kRunStates[] = {
    {RunState::pending, "pending"},   {RunState::running, "running"}, {RunState::stale, "stale"},
    {RunState::complete, "complete"}, {RunState::failed, "failed"},
};

constexpr std::pair<RunStatus, const char*> kRunStatuses[] = {
    {RunStatus::complete, "complete"},     {RunStatus::skipped, "skipped"},
    {RunStatus::failed, "failed"},         {RunStatus::interrupted, "interrupted"},
    {RunStatus::taken_over, "taken_over"},
};

template <typename Enum, std::size_t N>
const char* name_in(const std::pair<Enum, const char*> (&table)[N], Enum value) {
  for (const auto& [v, name] : table)
    if (v == value) return name;
  return "?";
}

template <typename Enum, std::size_t N>
std::optional<Enum> value_in(const std::pair<Enum, const char*> (&table)[N],
                             const std::string& word) {
  for (const auto& [v, name] : table)
    if (word == name) return v;
  return std::nullopt;
}

}  // namespace

const char* to_string(RunState s) {
  return name_in(kRunStates, s);
}
std::optional<RunState> parse_run_state(const std::string& word) {
  return value_in(kRunStates, word);
}

const char* to_string(RunStatus s) {
  return name_in(kRunStatuses, s);
}
std::optional<RunStatus> parse_run_status(const std::string& word) {
  return value_in(kRunStatuses, word);
}

}  // namespace flatface
