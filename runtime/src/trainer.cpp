#include "trainer.hpp"

#include <torch/cuda.h>
#include <torch/optim/sgd.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "checkpoint.hpp"
#include "device_model.hpp"
#include "evaluation.hpp"
#include "factory.hpp"
#include "flatface/torch_compat.hpp"
#include "flatface/version.hpp"
#include "loader.hpp"
#include "optimizer.hpp"
#include "schedule.hpp"
#include "state_dict.hpp"
#include "train_step.hpp"

namespace flatface {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string plugin_label(const PluginRef& ref) { return ref.plugin + ref.options.canonical(); }

// Partial sums of one epoch, kept in the checkpoint so an interrupted epoch resumes exactly. The
// statistics of the perturbed pass are summed over the steps that made one, the gradient norm over
// the steps that computed it.
struct EpochSums {
  double loss = 0, perturbation_loss = 0, loss_perturbed = 0, grad_norm = 0, epsilon_norm = 0;
  double correct = 0, seen = 0, step_seconds = 0, steps = 0, last_lr = 0;
  double second_pass_steps = 0, grad_norm_steps = 0;

  std::vector<double> pack() const {
    return {loss, perturbation_loss, loss_perturbed, grad_norm, epsilon_norm,      correct,
            seen, step_seconds,      steps,          last_lr,   second_pass_steps, grad_norm_steps};
  }
  static EpochSums unpack(const std::vector<double>& v) {
    EpochSums s;
    if (v.size() != 10 && v.size() != 12) return s;
    s.loss = v[0], s.perturbation_loss = v[1], s.loss_perturbed = v[2], s.grad_norm = v[3];
    s.epsilon_norm = v[4], s.correct = v[5], s.seen = v[6], s.step_seconds = v[7], s.steps = v[8];
    s.last_lr = v[9];
    if (v.size() == 12) {
      s.second_pass_steps = v[10], s.grad_norm_steps = v[11];
    } else {  // a checkpoint of before the counts: every strategy then took 1 or 2 passes always
      s.second_pass_steps = std::isnan(s.loss_perturbed) ? 0 : s.steps;
      s.grad_norm_steps = std::isnan(s.grad_norm) ? 0 : s.steps;
      if (s.second_pass_steps == 0) s.perturbation_loss = s.loss_perturbed = s.epsilon_norm = 0;
      if (s.grad_norm_steps == 0) s.grad_norm = 0;
    }
    return s;
  }
  // `st` has passed step_problem: a second pass reported its three statistics.
  void add(const StepStats& st, double lr, std::int64_t batch, double dt) {
    loss += st.loss;
    if (st.second_pass) {
      perturbation_loss += *st.perturbation_loss;
      loss_perturbed += *st.loss_perturbed;
      epsilon_norm += *st.epsilon_norm;
      second_pass_steps += 1;
    }
    if (st.grad_norm) {
      grad_norm += *st.grad_norm;
      grad_norm_steps += 1;
    }
    seen += static_cast<double>(batch);
    step_seconds += dt;
    steps += 1;
    last_lr = lr;
  }
};

// What is wrong with a step's report, naming the statistic, or "" when nothing is. A statistic
// the step did not compute is fine (AACE does not take grad L_margin(w)); one it computed must be
// finite, and a step that made a second pass must report that pass's three statistics.
std::string step_problem(const StepStats& s) {
  struct Reported {
    const char* name;
    std::optional<double> value;
    bool of_second_pass;
  };
  const Reported reported[] = {{"loss", s.loss, false},
                               {"perturbation_loss", s.perturbation_loss, true},
                               {"loss_perturbed", s.loss_perturbed, true},
                               {"grad_norm", s.grad_norm, false},
                               {"epsilon_norm", s.epsilon_norm, true}};
  for (const Reported& r : reported) {
    if (r.value && !std::isfinite(*r.value))
      return "non-finite " + std::string(r.name) + " (" + std::to_string(*r.value) + ")";
    if (s.second_pass && r.of_second_pass && !r.value)
      return "a second pass that reported no " + std::string(r.name);
  }
  return "";
}

}  // namespace

std::string utc_timestamp() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  auto total = static_cast<long long>(s + 0.5);
  char buf[32];
  if (total >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", total / 3600, (total / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%lldm%02llds", total / 60, total % 60);
  return buf;
}

std::string resolve_device(const std::string& requested) {
  if (requested == "auto") return torch::cuda::is_available() ? "cuda" : "cpu";
  if (requested == "cpu") return requested;
  if (requested.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available()) {
      throw ConfigError("device '" + requested +
                        "' requested but CUDA is not available in this libtorch build/machine");
    }
    return requested;
  }
  throw ConfigError("unknown device '" + requested + "' (expected cpu, cuda, cuda:N or auto)");
}

std::string result_path(const Experiment& e, const RunSpec& run) {
  return (fs::path(e.output) / (run.id + ".h5")).string();
}

std::string checkpoint_path(const Experiment& e, const RunSpec& run) {
  return (fs::path(e.output) / "checkpoints" / (run.id + ".ckpt")).string();
}

RunOutcome train_run(const Experiment& grid, const RunSpec& run, GridResources& shared,
                     const TrainerOptions& options) {
  const auto run_start = Clock::now();
  // This run's settings: its swept values (head.m, train.lr, ...) in place of the written ones.
  const Experiment e = run_experiment(grid, run);
  const Setup& setup = e.setups[run.setup];
  const Registry& reg = *shared.registry;
  RunOutcome outcome;
  outcome.result_path = result_path(e, run);
  const std::string ckpt = checkpoint_path(e, run);
  fs::create_directories(fs::path(ckpt).parent_path());

  std::optional<RunRecord> previous;
  if (fs::exists(outcome.result_path)) previous = read_run_record(outcome.result_path);
  if (previous && previous->status == "failed" && options.retry_failed) {
    previous->status = "running";
    previous->failure_reason.clear();
    previous->failed_step = -1;
  }
  if (previous && previous->status != "running") {
    outcome.status = previous->status == "complete" ? RunStatus::skipped : RunStatus::failed;
    outcome.reason = previous->failure_reason;
    outcome.record = *previous;
    return outcome;
  }

  const std::string device_name = resolve_device(e.device);
  const c10::Device device(device_name);
  const bool cuda = device.is_cuda();

  // Same seed, same numbers: weights, head and data order all derive from it.
  torch::manual_seed(static_cast<std::uint64_t>(run.seed));
  auto backbone = make_backbone(reg, e.backbone);
  const bool resuming = previous && fs::exists(ckpt);
  // [model] init: a fresh run starts from these weights; a resumed one from its checkpoint.
  if (!e.init.empty() && !resuming) load_weights(*backbone, e.init);
  auto& train_set = shared.train_sets[run.seed];
  if (!train_set)
    train_set = make_train_set(reg, e.train_data, backbone->input_size(),
                               static_cast<std::uint64_t>(run.seed));
  auto head = make_head(reg, setup.head, backbone->embedding_dim(), train_set->num_classes());
  auto strategy = make_perturbation(reg, setup.perturbation.plugin, perturbation_options(e, run),
                                    static_cast<std::uint64_t>(run.seed));
  for (const auto& ev : e.eval) {
    if (shared.verification[ev.name]) continue;
    const auto t = Clock::now();  // decoding the pairs is part of evaluating them
    shared.verification[ev.name] = make_verification_set(reg, ev.data, backbone->input_size(), 0);
    outcome.eval_seconds += seconds_since(t);
  }
  DeviceModel model = place_on_device(backbone, head, e.train, setup.bn_second_pass, device);
  auto& optimizer = model.optimizer;
  TrainStep& step = *model.step;

  LoaderOptions lo;
  lo.batch_size = e.train.batch_size;
  lo.input_size = backbone->input_size();
  lo.threads = static_cast<int>(e.train.loader_threads > 0 ? e.train.loader_threads : options.threads);
  lo.seed = static_cast<std::uint64_t>(run.seed);
  lo.flip = e.train.flip;
  lo.pin_memory = cuda;
  Loader loader(train_set, lo);
  const std::int64_t steps_per_epoch = loader.batches_per_epoch();

  RunRecord& record = outcome.record;
  record.attributes = {
      {"experiment", e.name},
      {"setup", setup.name},
      {"head", plugin_label(setup.head)},
      {"head_plugin", setup.head.plugin},
      {"perturbation", setup.perturbation.plugin},
      {"backbone", plugin_label(e.backbone)},
      {"init", e.init},
      {"dataset", plugin_label(e.train_data)},
      {"rho", run.rho ? format_rho(*run.rho) : ""},
      {"seed", std::to_string(run.seed)},
      {"run_id", run.id},
      {"config_toml", e.resolved_toml},
      {"flatface_version", FLATFACE_VERSION_STRING},
      {"torch_version", torch_version_string()},
      {"device", device_name},
      {"start_time", utc_timestamp()},
      {"end_time", ""},
  };
  // Every swept value, "sweep.head.m" = "0.3", so that reports can tell the runs apart.
  for (const auto& v : run.swept) record.attributes["sweep." + v.key] = format_value(v.value);
  for (const auto& ev : e.eval) record.benchmark_names.push_back(ev.name);

  TrainingState state;
  state.experiment_toml = e.resolved_toml;
  state.run_id = run.id;
  if (resuming) {
    state = load_checkpoint(ckpt, *backbone, *head, *optimizer);
    std::vector<at::Tensor> strategy_state;
    for (const auto& t : state.perturbation_state) strategy_state.push_back(t.to(device));
    strategy->load_state(strategy_state);
    record.attributes["start_time"] = previous->attributes.count("start_time")
                                          ? previous->attributes.at("start_time")
                                          : record.attributes["start_time"];
    record.epochs = previous->epochs;
    if (record.epochs.size() > static_cast<std::size_t>(state.epoch))
      record.epochs.resize(static_cast<std::size_t>(state.epoch));
    spdlog::info("resuming run {} from epoch {} step {}", run.id, state.epoch, state.step_in_epoch);
  }
  // Another process may have taken the run over while this one was paused (a claim's heartbeat
  // went stale): then it writes nothing more.
  auto holds_run = [&] { return !options.holds_run || options.holds_run(); };
  auto taken_over = [&] {
    outcome.status = RunStatus::taken_over;
    outcome.total_seconds = seconds_since(run_start);
    if (options.live_progress) std::fprintf(stdout, "\n");
    return outcome;
  };
  if (!holds_run()) return taken_over();
  write_run_record(outcome.result_path, record);

  const std::string label = describe_run(e, run);
  const std::string run_tag =
      "[" + std::to_string(options.run_index + 1) + "/" + std::to_string(options.run_count) + "]";
  double elapsed_before = state.elapsed_seconds;
  const auto session_start = Clock::now();
  auto elapsed = [&] { return elapsed_before + seconds_since(session_start); };

  auto fail = [&](const std::string& why) {
    if (!holds_run()) return taken_over();
    record.status = "failed";
    record.failure_reason = why;
    record.failed_step = state.global_step;
    record.attributes["end_time"] = utc_timestamp();
    write_run_record(outcome.result_path, record);
    outcome.status = RunStatus::failed;
    outcome.reason = why;
    outcome.total_seconds = seconds_since(run_start);
    spdlog::error("{} {} failed at step {}: {}", run_tag, label, state.global_step, why);
    return outcome;
  };

  if (steps_per_epoch == 0) {
    return fail("the training set has " + std::to_string(train_set->size()) +
                " images, fewer than one batch of " + std::to_string(e.train.batch_size));
  }

  auto evaluate_all = [&](std::map<std::string, BenchmarkMetrics>& into) {
    auto t = Clock::now();
    for (const auto& ev : e.eval) {
      auto r = evaluate(*backbone, *shared.verification[ev.name], e.train.batch_size, device);
      into[ev.name] = BenchmarkMetrics{r.accuracy, r.accuracy_std, r.threshold, r.tar_at_far};
    }
    outcome.eval_seconds += seconds_since(t);
  };

  const std::int64_t total_steps = e.train.epochs * steps_per_epoch;
  std::int64_t last_log_step = state.global_step;
  if (options.stop_after_steps == 0 && state.global_step < total_steps) {
    // Zero steps: the run's starting point (e.g. the [model] init weights) as a checkpoint.
    if (!holds_run()) return taken_over();
    state.elapsed_seconds = elapsed();
    save_checkpoint(ckpt, state, *backbone, *head, *optimizer);
    outcome.status = RunStatus::interrupted;
    outcome.total_seconds = seconds_since(run_start);
    return outcome;
  }
  try {
    std::int64_t loading_epoch = -1;  // the epoch the loader is preparing
    for (std::int64_t epoch = state.epoch; epoch < e.train.epochs; ++epoch) {
      EpochSums sums = EpochSums::unpack(state.accumulators);
      if (loading_epoch != epoch) loader.start_epoch(epoch, state.step_in_epoch);
      while (auto batch = loader.next()) {
        const double lr = learning_rate(e.train, epoch, state.step_in_epoch, steps_per_epoch);
        set_learning_rate(*optimizer, lr);
        step.set_progress(state.global_step, total_steps);
        auto images = batch->images.to(device, /*non_blocking=*/true);
        if (cuda) images = images.contiguous(at::MemoryFormat::ChannelsLast);
        auto labels = batch->labels.to(device, /*non_blocking=*/true);
        const auto t = Clock::now();
        StepStats stats = step.run(*strategy, images, labels);
        const double dt = seconds_since(t);
        outcome.train_seconds += dt;
        if (const std::string problem = step_problem(stats); !problem.empty()) {
          std::ostringstream why;
          why << problem << " at epoch " << epoch + 1 << " step " << state.step_in_epoch + 1;
          return fail(why.str());
        }
        sums.add(stats, lr, labels.size(0), dt);
        outcome.steps += 1;
        if (stats.second_pass) outcome.second_pass_steps += 1;
        ++state.step_in_epoch;
        ++state.global_step;

        const std::int64_t done = state.global_step;
        const double per_step = sums.step_seconds / sums.steps;
        const double img_s = sums.seen / sums.step_seconds;
        if (options.on_step)
          options.on_step({epoch + 1, e.train.epochs, state.step_in_epoch, steps_per_epoch,
                           stats.loss, img_s, per_step * static_cast<double>(total_steps - done)});
        if (options.live_progress) {
          std::fprintf(stdout,
                       "\r%s %s | epoch %lld/%lld step %lld/%lld | loss %.4f | %.0f img/s | ETA %s   ",
                       run_tag.c_str(), label.c_str(), static_cast<long long>(epoch + 1),
                       static_cast<long long>(e.train.epochs),
                       static_cast<long long>(state.step_in_epoch),
                       static_cast<long long>(steps_per_epoch), stats.loss, img_s,
                       format_duration(per_step * static_cast<double>(total_steps - done)).c_str());
          std::fflush(stdout);
        } else if (e.train.log_every_steps > 0 && done - last_log_step >= e.train.log_every_steps) {
          last_log_step = done;
          spdlog::info("{} {} epoch {}/{} step {}/{} loss {:.4f} lr {:.4g} {:.0f} img/s ETA {}",
                       run_tag, label, epoch + 1, e.train.epochs, state.step_in_epoch,
                       steps_per_epoch, stats.loss, lr, img_s,
                       format_duration(per_step * static_cast<double>(total_steps - done)));
        }
        if (e.train.eval_every_steps > 0 && done % e.train.eval_every_steps == 0 && !e.eval.empty()) {
          std::map<std::string, BenchmarkMetrics> mid;
          evaluate_all(mid);
          std::string line;
          for (const auto& [name, m] : mid)
            line += " " + name + " " + std::to_string(m.accuracy * 100).substr(0, 5) + "%";
          spdlog::info("{} {} step {}:{}", run_tag, label, done, line);
        }
        const bool stop_now = (options.stop && options.stop->load()) ||
                              (options.stop_after_steps >= 0 && outcome.steps >= options.stop_after_steps);
        if (stop_now && state.step_in_epoch < steps_per_epoch) {
          if (!holds_run()) return taken_over();
          sums.correct += static_cast<double>(step.take_correct());
          state.accumulators = sums.pack();
          state.perturbation_state = strategy->state();
          state.epoch = epoch;
          state.elapsed_seconds = elapsed();
          save_checkpoint(ckpt, state, *backbone, *head, *optimizer);
          write_run_record(outcome.result_path, record);
          outcome.status = RunStatus::interrupted;
          outcome.total_seconds = seconds_since(run_start);
          if (options.live_progress) std::fprintf(stdout, "\n");
          return outcome;
        }
      }
      if (options.live_progress) std::fprintf(stdout, "\n");
      sums.correct += static_cast<double>(step.take_correct());
      // The next epoch's first batches are prepared while this one is evaluated and saved.
      if (epoch + 1 < e.train.epochs) {
        loader.start_epoch(epoch + 1);
        loading_epoch = epoch + 1;
      }

      EpochMetrics m;
      m.epoch = epoch + 1;
      m.lr = sums.last_lr;
      m.loss = sums.loss / sums.steps;
      m.perturbation_loss = sums.perturbation_loss / sums.second_pass_steps;  // NaN when none
      m.loss_perturbed = sums.loss_perturbed / sums.second_pass_steps;
      m.grad_norm = sums.grad_norm / sums.grad_norm_steps;
      m.epsilon_norm = sums.epsilon_norm / sums.second_pass_steps;
      m.second_pass_fraction = sums.second_pass_steps / sums.steps;
      m.train_accuracy = sums.correct / sums.seen;
      m.images_per_second = sums.seen / sums.step_seconds;
      evaluate_all(m.benchmarks);
      m.wall_time = elapsed();
      record.epochs.push_back(m);

      // The result file first, then the checkpoint: a crash in between resumes from the older
      // checkpoint and redoes (identically, on the CPU) the epoch the file already holds.
      state.epoch = epoch + 1;
      state.step_in_epoch = 0;
      state.accumulators.clear();
      state.perturbation_state = strategy->state();
      state.elapsed_seconds = m.wall_time;
      if (state.epoch == e.train.epochs) {
        record.status = "complete";
        record.attributes["end_time"] = utc_timestamp();
      }
      if (!holds_run()) return taken_over();
      const auto save_start = Clock::now();
      write_run_record(outcome.result_path, record);
      save_checkpoint(ckpt, state, *backbone, *head, *optimizer);
      outcome.save_seconds += seconds_since(save_start);

      std::string bench;
      for (const auto& [name, b] : m.benchmarks) {
        char buf[64];
        std::snprintf(buf, sizeof buf, " %s %.2f%%", name.c_str(), b.accuracy * 100);
        bench += buf;
      }
      char second_pass[48] = "";
      if (strategy->two_pass()) {
        std::snprintf(second_pass, sizeof second_pass, ", second pass on %.0f%% of steps",
                      100 * m.second_pass_fraction);
      }
      spdlog::info("{} {} epoch {}/{}: loss {:.4f} train acc {:.2f}%{} ({:.0f} img/s{})", run_tag,
                   label, epoch + 1, e.train.epochs, m.loss, m.train_accuracy * 100, bench,
                   m.images_per_second, second_pass);
      const bool stop_now = (options.stop && options.stop->load()) ||
                            (options.stop_after_steps >= 0 && outcome.steps >= options.stop_after_steps);
      if (stop_now && state.epoch < e.train.epochs) {
        outcome.status = RunStatus::interrupted;  // the epoch's checkpoint is already saved
        outcome.total_seconds = seconds_since(run_start);
        return outcome;
      }
    }
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& err) {
    return fail(err.what());
  }
  outcome.status = RunStatus::complete;
  outcome.total_seconds = seconds_since(run_start);
  return outcome;
}

}  // namespace flatface
