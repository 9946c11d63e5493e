#include "training/trainer.hpp"

#include <spdlog/spdlog.h>
#include <torch/cuda.h>
#include <torch/optim/sgd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>

#include "data/loader.hpp"
#include "distributed/model_sync.hpp"
#include "evaluation/evaluation.hpp"
#include "flatface/torch_compat.hpp"
#include "flatface/version.hpp"
#include "formats/state_dict.hpp"
#include "plugin_host/factory.hpp"
#include "training/checkpoint.hpp"
#include "training/device_model.hpp"
#include "training/epoch_sums.hpp"
#include "training/optimizer.hpp"
#include "training/schedule.hpp"
#include "training/train_step.hpp"

namespace flatface {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string plugin_label(const PluginRef& ref) {
  return ref.plugin + ref.options.canonical();
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
        ranks_(*options.ranks),
        gate_scope_("run/" + run.id + "/" + std::to_string(sessions_++)) {
    outcome_.result_path = result_path(e_, run);
  }

  RunOutcome train() {
    fs::create_directories(fs::path(ckpt_).parent_path());
    if (auto done = settled_by_file()) return *done;
    set_up();
    if (previous_ && fs::exists(ckpt_)) resume();
    // Every rank starts from rank 0's weights (and BN, head statistics).
    distributed::broadcast_modules(ranks_, {backbone_.get(), head_.get()});
    if (!holds_run()) return taken_over();
    if (leader()) write_run_record(outcome_.result_path, record_);
    session_start_ = Clock::now();

    if (steps_per_epoch_ == 0) {
      return fail("the training set has " + std::to_string(train_set_->size()) +
                  " images, fewer than one batch of " + std::to_string(e_.train.batch_size));
    }
    if (options_.stop_after_steps == 0 && state_.global_step < total_steps_) {
      // Zero steps: the run's starting point (e.g. the [model] init weights) as a checkpoint.
      state_.elapsed_seconds = elapsed();
      return checkpoint_now() ? finish(RunStatus::interrupted) : taken_over();
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
    if (!e_.init.empty() && !(previous_ && fs::exists(ckpt_))) load_weights(*backbone_, e_.init, {e_.init_prefix});
    auto& train_set = shared_.train_sets[run_.seed];
    if (!train_set)
      train_set = make_train_set(reg, e_.train_data, backbone_->input_size(),
                                 static_cast<std::uint64_t>(run_.seed));
    train_set_ = train_set;
    head_ = make_head(reg, setup_.head, backbone_->embedding_dim(), train_set_->num_classes(),
                      ranks_, static_cast<std::uint64_t>(run_.seed));
    strategy_ = make_perturbation(reg, setup_.perturbation.plugin, perturbation_options(e_, run_),
                                  static_cast<std::uint64_t>(run_.seed));
    for (const auto& ev : e_.eval) {
      if (shared_.verification[ev.name]) continue;
      const auto t = Clock::now();  // decoding the pairs is part of evaluating them
      shared_.verification[ev.name] =
          make_verification_set(reg, ev.data, backbone_->input_size(), 0);
      outcome_.eval_seconds += seconds_since(t);
    }
    // train.batch_size is the global batch; this rank trains on its rows of each.
    const auto [share_begin, share_end] =
        batch_share(e_.train.batch_size, ranks_.rank(), ranks_.world_size());
    const DataParallel data_parallel{
        &ranks_,
        static_cast<double>(share_end - share_begin) / static_cast<double>(e_.train.batch_size),
        setup_.epsilon == "global", share_begin, e_.train.batch_size};
    model_ =
        place_on_device(backbone_, head_, e_.train, setup_.bn_second_pass, device, data_parallel);

    LoaderOptions lo;
    lo.batch_size = e_.train.batch_size;
    lo.input_size = backbone_->input_size();
    lo.format = backbone_->input_format();
    lo.threads =
        static_cast<int>(e_.train.loader_threads > 0 ? e_.train.loader_threads : options_.threads);
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
    if (!e_.init_prefix.empty()) record_.attributes["init_prefix"] = e_.init_prefix;
    if (ranks_.world_size() > 1)
      record_.attributes["data_parallel_ranks"] = std::to_string(ranks_.world_size());
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
      const double allreduce_before = ranks_.all_reduce_seconds();
      StepStats stats = step.run(*strategy_, images, labels);
      const double dt = seconds_since(t);
      step_allreduce_seconds_ += ranks_.all_reduce_seconds() - allreduce_before;
      outcome_.train_seconds += dt;
      if (const std::string problem = step_problem(stats); !problem.empty()) {
        std::ostringstream why;
        why << problem << " at epoch " << epoch + 1 << " step " << state_.step_in_epoch + 1;
        return fail(why.str());
      }
      // Statistics and counts are the global batch's (TrainStep reduces them over the ranks).
      sums.add(stats, lr, e_.train.batch_size, dt);
      outcome_.steps += 1;
      if (stats.second_pass) outcome_.second_pass_steps += 1;
      ++state_.step_in_epoch;
      ++state_.global_step;
      report_step(epoch, sums, stats.loss, lr);

      if (agreed_stop() && state_.step_in_epoch < steps_per_epoch_) {
        // Mid-epoch: the epoch's partial sums go into the checkpoint.
        sums.correct += static_cast<double>(step.take_correct());
        state_.accumulators = sums.pack();
        state_.perturbation_state = strategy_->state();
        state_.epoch = epoch;
        state_.elapsed_seconds = elapsed();
        return checkpoint_now() ? finish(RunStatus::interrupted) : taken_over();
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
      after_rank0("evaluated");
      if (options_.progress && leader()) options_.progress->on_evaluation(done, mid);
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
    EpochMetrics m = sums.metrics(epoch + 1);
    evaluate_all(m.benchmarks);
    m.wall_time = elapsed();
    record_.epochs.push_back(m);

    state_.epoch = epoch + 1;
    state_.step_in_epoch = 0;
    state_.accumulators.clear();
    state_.perturbation_state = strategy_->state();
    state_.elapsed_seconds = m.wall_time;
    if (state_.epoch == e_.train.epochs) {
      record_.status = RunState::complete;
      record_.attributes["end_time"] = utc_timestamp();
    }
    if (!checkpoint_now()) return taken_over();
    if (options_.progress) options_.progress->on_epoch(m, e_.train.epochs, strategy_->two_pass());

    // Interrupted at an epoch's end: its checkpoint is already saved.
    if (agreed_stop() && state_.epoch < e_.train.epochs) return finish(RunStatus::interrupted);
    return std::nullopt;
  }

  // The result file first, then the checkpoint, of state_ and record_ as they stand; rank 0 alone
  // writes, and the other ranks go on once it has (which, with its evaluation, may take longer
  // than a collective's timeout). A crash between the two writes resumes from the older
  // checkpoint and redoes (identically, on the CPU) the steps the file already holds. False,
  // writing nothing, when this process no longer holds the run.
  bool checkpoint_now() {
    if (!holds_run()) return false;
    const auto start = Clock::now();
    if (leader()) {
      write_run_record(outcome_.result_path, record_);
      save_checkpoint(ckpt_, state_, *backbone_, *head_, *model_.optimizer);
    }
    after_rank0("saved");
    outcome_.save_seconds += seconds_since(start);
    return true;
  }

  // Rank 0 alone evaluates and writes (with its BN statistics, the ones it saves).
  bool leader() const { return ranks_.rank() == 0; }
  // Rank 0 has done `what`; the other ranks wait for it. Keys are numbered in call order, the
  // same on every rank.
  void after_rank0(const std::string& what) {
    distributed::rank0_finished(ranks_,
                                gate_scope_ + "/" + std::to_string(gate_calls_++) + "/" + what);
  }

  void evaluate_all(std::map<std::string, BenchmarkMetrics>& into) {
    if (!leader()) return;
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
  bool agreed_stop() { return ranks_.any(stop_requested()); }

  // Another process may have taken the run over while this one was paused (a claim's heartbeat
  // went stale): then it writes nothing more.
  bool holds_run() const { return !options_.holds_run || options_.holds_run(); }

  double elapsed() const { return elapsed_before_ + seconds_since(session_start_); }

  RunOutcome finish(RunStatus status) {
    if (status != RunStatus::complete && options_.progress) options_.progress->on_stop();
    if (ranks_.world_size() > 1 && outcome_.train_seconds > 0) {
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
    if (leader()) write_run_record(outcome_.result_path, record_);
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
  distributed::Communicator& ranks_;  // rank 0 of 1 in one process
  const std::string gate_scope_;      // of after_rank0()'s keys: this session of this run
  long gate_calls_ = 0;
  double step_allreduce_seconds_ = 0;  // inside training steps, waiting for other ranks included
  static inline long sessions_ = 0;    // numbers the sessions (the same on every rank)
};

}  // namespace

RunOutcome train_run(const Experiment& grid, const RunSpec& run, GridResources& shared,
                     const TrainerOptions& options) {
  return RunTraining(grid, run, shared, options).train();
}

}  // namespace flatface
