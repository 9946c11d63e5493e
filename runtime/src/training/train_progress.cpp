#include "training/train_progress.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <utility>

#include "training/trainer.hpp"

namespace flatface {

namespace {

// " lfw 99.12% cfp_fp 93.40%"
std::string accuracies(const std::map<std::string, BenchmarkMetrics>& metrics) {
  std::string text;
  for (const auto& [name, m] : metrics) {
    char buf[64];
    std::snprintf(buf, sizeof buf, " %s %.2f%%", name.c_str(), m.accuracy * 100);
    text += buf;
  }
  return text;
}

}  // namespace

ConsoleProgress::ConsoleProgress(std::string tag, std::string label, bool live,
                                 std::int64_t log_every_steps)
    : tag_(std::move(tag)), label_(std::move(label)), live_(live), log_every_steps_(log_every_steps) {}

void ConsoleProgress::on_step(const RunProgress& p) {
  if (live_) {
    std::fprintf(stdout, "\r%s %s | epoch %lld/%lld step %lld/%lld | loss %.4f | %.0f img/s | ETA %s   ",
                 tag_.c_str(), label_.c_str(), static_cast<long long>(p.epoch),
                 static_cast<long long>(p.epochs), static_cast<long long>(p.step),
                 static_cast<long long>(p.steps), p.loss, p.images_per_second,
                 format_duration(p.eta_seconds).c_str());
    std::fflush(stdout);
    line_open_ = true;
    return;
  }
  if (log_every_steps_ <= 0) return;
  if (last_logged_ < 0) last_logged_ = p.global_step - 1;  // counted from this session's start
  if (p.global_step - last_logged_ < log_every_steps_) return;
  last_logged_ = p.global_step;
  spdlog::info("{} {} epoch {}/{} step {}/{} loss {:.4f} lr {:.4g} {:.0f} img/s ETA {}", tag_,
               label_, p.epoch, p.epochs, p.step, p.steps, p.loss, p.lr, p.images_per_second,
               format_duration(p.eta_seconds));
}

void ConsoleProgress::on_evaluation(std::int64_t global_step,
                                    const std::map<std::string, BenchmarkMetrics>& metrics) {
  spdlog::info("{} {} step {}:{}", tag_, label_, global_step, accuracies(metrics));
}

void ConsoleProgress::on_epoch(const EpochMetrics& m, std::int64_t epochs, bool two_pass) {
  end_line();
  char second_pass[48] = "";
  if (two_pass) {
    std::snprintf(second_pass, sizeof second_pass, ", second pass on %.0f%% of steps",
                  100 * m.second_pass_fraction);
  }
  spdlog::info("{} {} epoch {}/{}: loss {:.4f} train acc {:.2f}%{} ({:.0f} img/s{})", tag_, label_,
               m.epoch, epochs, m.loss, m.train_accuracy * 100, accuracies(m.benchmarks),
               m.images_per_second,
               second_pass);
}

void ConsoleProgress::on_stop() { end_line(); }

void ConsoleProgress::end_line() {
  if (!line_open_) return;
  std::fprintf(stdout, "\n");
  line_open_ = false;
}

}  // namespace flatface
