#include "grid/worker_events.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <sstream>
#include <utility>

namespace flatface {

namespace {

constexpr std::pair<WorkerEventKind, const char*> kKinds[] = {
    {WorkerEventKind::start, "start"},     {WorkerEventKind::step, "step"},
    {WorkerEventKind::end, "end"},         {WorkerEventKind::note, "note"},
    {WorkerEventKind::waiting, "waiting"}, {WorkerEventKind::summary, "summary"},
};

double number(const std::string& s) {
  return std::strtod(s.c_str(), nullptr);
}
std::int64_t integer(const std::string& s) {
  return static_cast<std::int64_t>(number(s));
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, '\t')) out.push_back(field);
  return out;
}

// The fields after the kind.
std::vector<std::string> fields_of(const WorkerEvent& e) {
  switch (e.kind) {
    case WorkerEventKind::start:
      return {std::to_string(e.run.index + 1), std::to_string(e.run.count), e.run.id, e.run.label};
    case WorkerEventKind::step: {
      const RunProgress& p = e.progress;
      return {e.run.id,
              std::to_string(p.epoch),
              std::to_string(p.epochs),
              std::to_string(p.step),
              std::to_string(p.steps),
              std::to_string(p.images_per_second),
              std::to_string(p.eta_seconds)};
    }
    case WorkerEventKind::end:
      return {e.run.id, to_string(e.status), e.text};
    case WorkerEventKind::note:
    case WorkerEventKind::waiting:
      return {e.text};
    case WorkerEventKind::summary: {
      const GridSummary& s = e.summary;
      return {std::to_string(s.trained),       std::to_string(s.failed),
              std::to_string(s.train_seconds), std::to_string(s.eval_seconds),
              std::to_string(s.save_seconds),  std::to_string(s.claim_seconds)};
    }
  }
  return {};
}

// How many fields, the kind included, a line of each kind has at least.
std::size_t fields_needed(WorkerEventKind kind) {
  switch (kind) {
    case WorkerEventKind::start:
      return 5;
    case WorkerEventKind::step:
      return 8;
    case WorkerEventKind::end:
      return 4;
    case WorkerEventKind::note:
    case WorkerEventKind::waiting:
      return 2;
    case WorkerEventKind::summary:
      return 7;
  }
  return 0;
}

}  // namespace

const char* to_string(WorkerEventKind kind) {
  for (const auto& [k, name] : kKinds)
    if (k == kind) return name;
  return "?";
}

std::optional<WorkerEventKind> parse_worker_event_kind(const std::string& word) {
  for (const auto& [k, name] : kKinds)
    if (word == name) return k;
  return std::nullopt;
}

std::string format_worker_event(const WorkerEvent& event) {
  std::string line = to_string(event.kind);
  for (const auto& field : fields_of(event)) {
    line += '\t';
    for (char c : field) line += (c == '\t' || c == '\n' || c == '\r') ? ' ' : c;
  }
  return line + '\n';
}

std::optional<WorkerEvent> parse_worker_event(const std::string& line) {
  const std::vector<std::string> f = split_tabs(line);
  if (f.empty()) return std::nullopt;
  const auto kind = parse_worker_event_kind(f[0]);
  if (!kind || f.size() < fields_needed(*kind)) return std::nullopt;
  WorkerEvent e;
  e.kind = *kind;
  switch (e.kind) {
    case WorkerEventKind::start:
      if (integer(f[1]) < 1) return std::nullopt;
      e.run.index = static_cast<std::size_t>(integer(f[1]) - 1);
      e.run.count = static_cast<std::size_t>(std::max<std::int64_t>(0, integer(f[2])));
      e.run.id = f[3];
      e.run.label = f[4];
      break;
    case WorkerEventKind::step:
      e.run.id = f[1];
      e.progress.epoch = integer(f[2]);
      e.progress.epochs = integer(f[3]);
      e.progress.step = integer(f[4]);
      e.progress.steps = integer(f[5]);
      e.progress.images_per_second = number(f[6]);
      e.progress.eta_seconds = number(f[7]);
      break;
    case WorkerEventKind::end: {
      const auto status = parse_run_status(f[2]);
      if (!status) return std::nullopt;
      e.run.id = f[1];
      e.status = *status;
      e.text = f[3];
      break;
    }
    case WorkerEventKind::note:
    case WorkerEventKind::waiting:
      e.text = f[1];
      break;
    case WorkerEventKind::summary:
      e.summary.trained = static_cast<int>(integer(f[1]));
      e.summary.failed = static_cast<int>(integer(f[2]));
      e.summary.train_seconds = number(f[3]);
      e.summary.eval_seconds = number(f[4]);
      e.summary.save_seconds = number(f[5]);
      e.summary.claim_seconds = number(f[6]);
      break;
  }
  return e;
}

void WorkerEventSender::send(const WorkerEvent& event) const {
  if (fd_ < 0) return;
  const std::string line = format_worker_event(event);
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

void WorkerEventSender::claim_taken_over(const GridRun&, const std::string& text) {
  WorkerEvent e;
  e.kind = WorkerEventKind::note;
  e.text = text;
  send(e);
}

void WorkerEventSender::run_started(const GridRun& run) {
  WorkerEvent e;
  e.kind = WorkerEventKind::start;
  e.run = run;
  send(e);
}

TrainCallback* WorkerEventSender::run_progress(const GridRun& run) {
  if (fd_ < 0) return nullptr;
  steps_.start(run.id);
  return &steps_;
}

void WorkerEventSender::run_ended(const GridRun& run, RunStatus status,
                                  const std::string& message) {
  WorkerEvent e;
  e.kind = WorkerEventKind::end;
  e.run = run;
  e.status = status;
  e.text = run.tag() + " " + run.name() + ": " + message;
  send(e);
}

void WorkerEventSender::waiting(const std::string& text) {
  WorkerEvent e;
  e.kind = WorkerEventKind::waiting;
  e.text = text;
  send(e);
}

void WorkerEventSender::summary(const GridSummary& s) {
  WorkerEvent e;
  e.kind = WorkerEventKind::summary;
  e.summary = s;
  send(e);
}

void WorkerEventSender::Steps::start(const std::string& run_id) {
  run_id_ = run_id;
  last_ = std::chrono::steady_clock::now() - std::chrono::seconds(1);
}

void WorkerEventSender::Steps::on_step(const RunProgress& p) {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_ < std::chrono::milliseconds(500) && p.step < p.steps) return;
  last_ = now;
  WorkerEvent e;
  e.kind = WorkerEventKind::step;
  e.run.id = run_id_;
  e.progress = p;
  sender_.send(e);
}

}  // namespace flatface
