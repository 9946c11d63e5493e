#include "training/trainer.hpp"

#include <torch/cuda.h>
#include <torch/optim/sgd.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>

#include "training/checkpoint.hpp"
#include "training/device_model.hpp"
#include "distributed/communicator.hpp"
#include "distributed/model_sync.hpp"
#include "distributed/run_ranks.hpp"
#include "evaluation/evaluation.hpp"
#include "plugin_host/factory.hpp"
#include "flatface/torch_compat.hpp"
#include "flatface/version.hpp"
#include "data/loader.hpp"
#include "training/optimizer.hpp"
#include "training/schedule.hpp"
#include "formats/state_dict.hpp"
#include "training/train_step.hpp"

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

namespace {

// One run's training session, told in chapters: what its file says (finished runs return at
// once), set-up, resume from the checkpoint, then epochs of steps, each closed by its record,
// evaluation and checkpoint. A chapter that ends the session early returns its outcome.
class RunTraining {
 public:
  RunTraining(const Experiment& grid, const RunSpec& run, GridResources& shared,
              const TrainerOptions& options)
      : e_(run_experiment(grid, run)),  // the run's settings: its swept values in place
        setup_(e_.setups[run.setup]),
        run_(run),
        shared_(shared),
        options_(options),
        ckpt_(checkpoint_path(e_, run)),
        label_(describe_run(e_, run)),
        tag_("[" + std::to_string(options.run_index + 1) + "/" + std::to_string(options.run_count) +
             "]"),
        run_ranks_(options.ranks),
        gate_(options.ranks, "run/" + run.id + "/" + std::to_string(sessions_++)) {
    outcome_.result_path = result_path(e_, run);
  }

  RunOutcome train() {
    fs::create_directories(fs::path(ckpt_).parent_path());
    if (auto done = settled_by_file()) return *done;
    set_up();
    if (previous_ && fs::exists(ckpt_)) resume();
    // Every rank starts from rank 0's weights (and BN, head statistics).
    distributed::broadcast_modules(options_.ranks, {backbone_.get(), head_.get()});
    if (!holds_run()) return taken_over();
    if (gate_.leader()) write_run_record(outcome_.result_path, record_);
    session_start_ = Clock::now();

    if (steps_per_epoch_ == 0) {
      return fail("the training set has " + std::to_string(train_set_->size()) +
                  " images, fewer than one batch of " + std::to_string(e_.train.batch_size));
    }
    if (options_.stop_after_steps == 0 && state_.global_step < total_steps_) {
      // Zero steps: the run's starting point (e.g. the [model] init weights) as a checkpoint.
      if (!holds_run()) return taken_over();
      state_.elapsed_seconds = elapsed();
      if (gate_.leader()) save_checkpoint(ckpt_, state_, *backbone_, *head_, *model_.optimizer);
      return finish(RunStatus::interrupted);
    }
    try {
      for (std::int64_t epoch = state_.epoch; epoch < e_.train.epochs; ++epoch) {
        EpochSums sums = EpochSums::unpack(state_.accumulators);
        if (auto stopped = train_epoch(epoch, sums)) return *stopped;
        if (auto stopped = end_epoch(epoch, sums)) return *stopped;
      }
    } catch (const ConfigError&) {
      throw;
    } catch (const distributed::RankLostError&) {
      throw;  // not the run's failure: its files stay as last saved, and it resumes
    } catch (const std::exception& err) {
      return fail(err.what());
    }
    return finish(RunStatus::complete);
  }

 private:
  // What the run's result file says: a complete or failed run is not trained again (a failed one
  // is, with --retry-failed); a running one resumes.
  std::optional<RunOutcome> settled_by_file() {
    if (fs::exists(outcome_.result_path)) previous_ = read_run_record(outcome_.result_path);
    if (previous_ && previous_->status == RunState::failed && options_.retry_failed) {
      previous_->status = RunState::running;
      previous_->failure_reason.clear();
      previous_->failed_step = -1;
    }
    if (!previous_ || previous_->status == RunState::running) return std::nullopt;
    outcome_.status =
        previous_->status == RunState::complete ? RunStatus::skipped : RunStatus::failed;
    outcome_.reason = previous_->failure_reason;
    outcome_.record = *previous_;
    return outcome_;
  }

  // Builds the run's objects: same seed, same numbers (weights, head and data order all derive
  // from it).
  void set_up() {
    const Registry& reg = *shared_.registry;
    device_name_ = resolve_device(e_.device);
    const c10::Device device(device_name_);
    torch::manual_seed(static_cast<std::uint64_t>(run_.seed));
    backbone_ = make_backbone(reg, e_.backbone);
    // [model] init: a fresh run starts from these weights; a resumed one from its checkpoint.
    if (!e_.init.empty() && !(previous_ && fs::exists(ckpt_))) load_weights(*backbone_, e_.init);
    auto& train_set = shared_.train_sets[run_.seed];
    if (!train_set)
      train_set = make_train_set(reg, e_.train_data, backbone_->input_size(),
                                 static_cast<std::uint64_t>(run_.seed));
    train_set_ = train_set;
    head_ = make_head(reg, setup_.head, backbone_->embedding_dim(), train_set_->num_classes());
    strategy_ = make_perturbation(reg, setup_.perturbation.plugin, perturbation_options(e_, run_),
                                  static_cast<std::uint64_t>(run_.seed));
    for (const auto& ev : e_.eval) {
      if (shared_.verification[ev.name]) continue;
      const auto t = Clock::now();  // decoding the pairs is part of evaluating them
      shared_.verification[ev.name] =
          make_verification_set(reg, ev.data, backbone_->input_size(), 0);
      outcome_.eval_seconds += seconds_since(t);
    }
    model_ = place_on_device(backbone_, head_, e_.train, setup_.bn_second_pass, device);
    const int rank = options_.ranks ? options_.ranks->rank() : 0;
    const int world = options_.ranks ? options_.ranks->world_size() : 1;
    // train.batch_size is the global batch; this rank trains on its rows of each.
    const auto [share_begin, share_end] = batch_share(e_.train.batch_size, rank, world);
    if (options_.ranks)
      model_.step->set_data_parallel(options_.ranks,
                                     static_cast<double>(share_end - share_begin) /
                                         static_cast<double>(e_.train.batch_size),
                                     setup_.epsilon == "global");

    LoaderOptions lo;
    lo.batch_size = e_.train.batch_size;
    lo.input_size = backbone_->input_size();
    lo.threads = static_cast<int>(e_.train.loader_threads > 0 ? e_.train.loader_threads
                                                               : options_.threads);
    lo.seed = static_cast<std::uint64_t>(run_.seed);
    lo.flip = e_.train.flip;
    lo.pin_memory = device.is_cuda();
    lo.share_begin = share_begin;
    lo.share_end = share_end;
    loader_ = std::make_unique<Loader>(train_set_, lo);
    steps_per_epoch_ = loader_->batches_per_epoch();
    total_steps_ = e_.train.epochs * steps_per_epoch_;

    record_.attributes = {
        {"experiment", e_.name},
        {"setup", setup_.name},
        {"head", plugin_label(setup_.head)},
        {"head_plugin", setup_.head.plugin},
        {"perturbation", setup_.perturbation.plugin},
        {"backbone", plugin_label(e_.backbone)},
        {"init", e_.init},
        {"dataset", plugin_label(e_.train_data)},
        {"rho", run_.rho ? format_rho(*run_.rho) : ""},
        {"seed", std::to_string(run_.seed)},
        {"run_id", run_.id},
        {"config_toml", e_.resolved_toml},
        {"flatface_version", FLATFACE_VERSION_STRING},
        {"torch_version", torch_version_string()},
        {"device", device_name_},
        {"start_time", utc_timestamp()},
        {"end_time", ""},
    };
    if (world > 1) record_.attributes["data_parallel_ranks"] = std::to_string(world);
    // Every swept value, "sweep.head.m" = "0.3", so that reports can tell the runs apart.
    for (const auto& v : run_.swept) record_.attributes["sweep." + v.key] = format_value(v.value);
    for (const auto& ev : e_.eval) record_.benchmark_names.push_back(ev.name);
    state_.experiment_toml = e_.resolved_toml;
    state_.run_id = run_.id;
  }

  // Weights, optimizer, generators and the strategy's state from the checkpoint; the record's
  // epochs up to the checkpoint's.
  void resume() {
    state_ = load_checkpoint(ckpt_, *backbone_, *head_, *model_.optimizer);
    std::vector<at::Tensor> strategy_state;
    for (const auto& t : state_.perturbation_state)
      strategy_state.push_back(t.to(c10::Device(device_name_)));
    strategy_->load_state(strategy_state);
    if (previous_->attributes.count("start_time"))
      record_.attributes["start_time"] = previous_->attributes.at("start_time");
    record_.epochs = previous_->epochs;
    if (record_.epochs.size() > static_cast<std::size_t>(state_.epoch))
      record_.epochs.resize(static_cast<std::size_t>(state_.epoch));
    elapsed_before_ = state_.elapsed_seconds;
    spdlog::info("resuming run {} from epoch {} step {}", run_.id, state_.epoch,
                 state_.step_in_epoch);
  }

  // The steps of one epoch (from state_.step_in_epoch on), summed into `sums`.
  std::optional<RunOutcome> train_epoch(std::int64_t epoch, EpochSums& sums) {
    const c10::Device device(device_name_);
    TrainStep& step = *model_.step;
    if (loading_epoch_ != epoch) loader_->start_epoch(epoch, state_.step_in_epoch);
    while (auto batch = loader_->next()) {
      const double lr = learning_rate(e_.train, epoch, state_.step_in_epoch, steps_per_epoch_);
      set_learning_rate(*model_.optimizer, lr);
      step.set_progress(state_.global_step, total_steps_);
      auto images = batch->images.to(device, /*non_blocking=*/true);
      if (device.is_cuda()) images = images.contiguous(at::MemoryFormat::ChannelsLast);
      auto labels = batch->labels.to(device, /*non_blocking=*/true);
      const auto t = Clock::now();
      const double allreduce_before = options_.ranks ? options_.ranks->all_reduce_seconds() : 0;
      StepStats stats = step.run(*strategy_, images, labels);
      const double dt = seconds_since(t);
      if (options_.ranks) step_allreduce_seconds_ += options_.ranks->all_reduce_seconds() - allreduce_before;
      outcome_.train_seconds += dt;
      if (const std::string problem = step_problem(stats); !problem.empty()) {
        std::ostringstream why;
        why << problem << " at epoch " << epoch + 1 << " step " << state_.step_in_epoch + 1;
        return fail(why.str());
      }
      // Statistics and counts are the global batch's (TrainStep reduces them over the ranks).
      sums.add(stats, lr, options_.ranks ? e_.train.batch_size : labels.size(0), dt);
      outcome_.steps += 1;
      if (stats.second_pass) outcome_.second_pass_steps += 1;
      ++state_.step_in_epoch;
      ++state_.global_step;
      report_step(epoch, sums, stats.loss, lr);

      if (agreed_stop() && state_.step_in_epoch < steps_per_epoch_) {
        if (!holds_run()) return taken_over();
        sums.correct += static_cast<double>(step.take_correct());
        state_.accumulators = sums.pack();
        state_.perturbation_state = strategy_->state();
        state_.epoch = epoch;
        state_.elapsed_seconds = elapsed();
        if (gate_.leader()) {
          save_checkpoint(ckpt_, state_, *backbone_, *head_, *model_.optimizer);
          write_run_record(outcome_.result_path, record_);
        }
        return finish(RunStatus::interrupted);
      }
    }
    sums.correct += static_cast<double>(step.take_correct());
    return std::nullopt;
  }

  void report_step(std::int64_t epoch, const EpochSums& sums, double loss, double lr) {
    const std::int64_t done = state_.global_step;
    if (e_.train.eval_every_steps > 0 && done % e_.train.eval_every_steps == 0 &&
        !e_.eval.empty()) {
      std::map<std::string, BenchmarkMetrics> mid;
      evaluate_all(mid);
      gate_.pass("evaluated");
      if (options_.progress && gate_.leader()) options_.progress->on_evaluation(done, mid);
    }
    if (!options_.progress) return;
    RunProgress p;
    p.epoch = epoch + 1;
    p.epochs = e_.train.epochs;
    p.step = state_.step_in_epoch;
    p.steps = steps_per_epoch_;
    p.global_step = done;
    p.loss = loss;
    p.lr = lr;
    p.images_per_second = sums.seen / sums.step_seconds;
    p.eta_seconds = sums.step_seconds / sums.steps * static_cast<double>(total_steps_ - done);
    options_.progress->on_step(p);
  }

  // The epoch's record (metrics, evaluation), then the result file and the checkpoint.
  std::optional<RunOutcome> end_epoch(std::int64_t epoch, const EpochSums& sums) {
    // The next epoch's first batches are prepared while this one is evaluated and saved.
    if (epoch + 1 < e_.train.epochs) {
      loader_->start_epoch(epoch + 1);
      loading_epoch_ = epoch + 1;
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
    record_.epochs.push_back(m);

    // The result file first, then the checkpoint: a crash in between resumes from the older
    // checkpoint and redoes (identically, on the CPU) the epoch the file already holds.
    state_.epoch = epoch + 1;
    state_.step_in_epoch = 0;
    state_.accumulators.clear();
    state_.perturbation_state = strategy_->state();
    state_.elapsed_seconds = m.wall_time;
    if (state_.epoch == e_.train.epochs) {
      record_.status = RunState::complete;
      record_.attributes["end_time"] = utc_timestamp();
    }
    if (!holds_run()) return taken_over();
    const auto save_start = Clock::now();
    if (gate_.leader()) {
      write_run_record(outcome_.result_path, record_);
      save_checkpoint(ckpt_, state_, *backbone_, *head_, *model_.optimizer);
    }
    // The other ranks go on once rank 0 has evaluated and saved (which may take longer than a
    // collective's timeout).
    gate_.pass("saved");
    outcome_.save_seconds += seconds_since(save_start);
    if (options_.progress) options_.progress->on_epoch(m, e_.train.epochs, strategy_->two_pass());

    // Interrupted at an epoch's end: its checkpoint is already saved.
    if (agreed_stop() && state_.epoch < e_.train.epochs) return finish(RunStatus::interrupted);
    return std::nullopt;
  }

  // Rank 0 alone evaluates (with its BN statistics, the ones it saves).
  void evaluate_all(std::map<std::string, BenchmarkMetrics>& into) {
    if (!gate_.leader()) return;
    const auto t = Clock::now();
    for (const auto& ev : e_.eval) {
      auto r = evaluate(*backbone_, *shared_.verification[ev.name], e_.train.batch_size,
                        c10::Device(device_name_));
      into[ev.name] = BenchmarkMetrics{r.accuracy, r.accuracy_std, r.threshold, r.tar_at_far};
    }
    outcome_.eval_seconds += seconds_since(t);
  }

  bool stop_requested() const {
    return (options_.stop && options_.stop->load()) ||
           (options_.stop_after_steps >= 0 && outcome_.steps >= options_.stop_after_steps);
  }
  // The ranks stop together, at the first step where any of them was asked to.
  bool agreed_stop() const { return distributed::agree_to_stop(options_.ranks, stop_requested()); }

  // Another process may have taken the run over while this one was paused (a claim's heartbeat
  // went stale): then it writes nothing more.
  bool holds_run() const { return !options_.holds_run || options_.holds_run(); }

  double elapsed() const { return elapsed_before_ + seconds_since(session_start_); }

  RunOutcome finish(RunStatus status) {
    if (status != RunStatus::complete && options_.progress) options_.progress->on_stop();
    if (options_.ranks && outcome_.train_seconds > 0) {
      spdlog::info("{} {}: {:.2f} s of {:.2f} s of training steps in all-reduce ({:.1f}%)", tag_,
                   label_, step_allreduce_seconds_, outcome_.train_seconds,
                   100 * step_allreduce_seconds_ / outcome_.train_seconds);
    }
    outcome_.status = status;
    outcome_.total_seconds = seconds_since(run_start_);
    return outcome_;
  }

  RunOutcome taken_over() { return finish(RunStatus::taken_over); }

  RunOutcome fail(const std::string& why) {
    if (!holds_run()) return taken_over();
    record_.status = RunState::failed;
    record_.failure_reason = why;
    record_.failed_step = state_.global_step;
    record_.attributes["end_time"] = utc_timestamp();
    if (gate_.leader()) write_run_record(outcome_.result_path, record_);
    outcome_.reason = why;
    RunOutcome out = finish(RunStatus::failed);
    spdlog::error("{} {} failed at step {}: {}", tag_, label_, state_.global_step, why);
    return out;
  }

  const Clock::time_point run_start_ = Clock::now();
  const Experiment e_;
  const Setup& setup_;
  const RunSpec& run_;
  GridResources& shared_;
  const TrainerOptions& options_;
  const std::string ckpt_, label_, tag_;

  RunOutcome outcome_;
  RunRecord& record_ = outcome_.record;
  std::optional<RunRecord> previous_;
  std::string device_name_;
  std::shared_ptr<Backbone> backbone_;
  std::shared_ptr<MarginHead> head_;
  std::shared_ptr<TrainSet> train_set_;
  std::unique_ptr<Perturbation> strategy_;
  DeviceModel model_;
  std::unique_ptr<Loader> loader_;
  std::int64_t steps_per_epoch_ = 0, total_steps_ = 0;
  std::int64_t loading_epoch_ = -1;  // the epoch the loader is preparing
  TrainingState state_;
  double elapsed_before_ = 0;
  Clock::time_point session_start_ = Clock::now();
  // Data-parallel: the SDK's collectives see this run's ranks; rank 0 leads.
  distributed::RunRanks run_ranks_;
  distributed::LeaderGate gate_;
  double step_allreduce_seconds_ = 0;  // inside training steps, waiting for other ranks included
  static inline long sessions_ = 0;  // numbers the gates' keys (the same on every rank)
};

}  // namespace

RunOutcome train_run(const Experiment& grid, const RunSpec& run, GridResources& shared,
                     const TrainerOptions& options) {
  return RunTraining(grid, run, shared, options).train();
}

}  // namespace flatface
