#include "flatness/analysis.hpp"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>

#include "training/checkpoint.hpp"
#include "evaluation/evaluation.hpp"
#include "plugin_host/factory.hpp"
#include "flatness/hessian.hpp"
#include "flatness/landscape.hpp"
#include "flatness/model_loss.hpp"
#include "flatness/sharpness.hpp"
#include "data/loader.hpp"
#include "formats/state_dict.hpp"
#include "training/trainer.hpp"

namespace flatface {

namespace fs = std::filesystem;

namespace {

using flatness::ParamVector;

AnalysisArray scalar(double v) { return {{}, {v}}; }

AnalysisArray vector_of(const std::vector<double>& v) { return {{v.size()}, v}; }

// Independent random streams of one analysis seed: one per measure.
std::uint64_t stream(std::int64_t seed, std::uint64_t measure) {
  return static_cast<std::uint64_t>(seed) * 1000003ull + measure;
}

std::string attribute(const RunRecord& r, const std::string& key) {
  auto it = r.attributes.find(key);
  return it == r.attributes.end() ? std::string() : it->second;
}

// The first `settings.batches` batches of the training set in the order of `settings.seed`, on
// the model's device.
std::vector<flatness::LabelledBatch> analysis_batches(const AnalysisModel& m,
                                                      const AnalysisSettings& settings) {
  LoaderOptions lo;
  lo.batch_size = settings.batch_size > 0 ? settings.batch_size : m.experiment.train.batch_size;
  lo.input_size = m.backbone->input_size();
  lo.format = m.backbone->input_format();
  lo.threads = std::max(1, at::get_num_threads());
  lo.seed = static_cast<std::uint64_t>(settings.seed);
  Loader loader(m.train_set, lo);
  if (loader.batches_per_epoch() < settings.batches) {
    throw ConfigError("analysis: batches = " + std::to_string(settings.batches) + " of " +
                      std::to_string(lo.batch_size) + " images, but the training set (" +
                      std::to_string(m.train_set->size()) + " images) holds " +
                      std::to_string(loader.batches_per_epoch()));
  }
  loader.start_epoch(0);
  std::vector<flatness::LabelledBatch> out;
  while (static_cast<std::int64_t>(out.size()) < settings.batches) {
    auto batch = loader.next();
    out.push_back({batch->images.to(m.device), batch->labels.to(m.device)});
  }
  return out;
}

// The backbone's and head's floating-point buffers (BN running statistics).
std::vector<at::Tensor> float_buffers(const AnalysisModel& m) {
  std::vector<at::Tensor> out;
  for (torch::nn::Module* mod : {static_cast<torch::nn::Module*>(m.backbone.get()),
                                 static_cast<torch::nn::Module*>(m.head.get())})
    for (const auto& b : mod->buffers())
      if (b.is_floating_point()) out.push_back(b);
  return out;
}

}  // namespace

RunFiles run_files_of_checkpoint(const std::string& checkpoint) {
  if (!fs::is_regular_file(checkpoint))
    throw ConfigError(checkpoint + ": checkpoint file does not exist");
  const fs::path ckpt(checkpoint);
  RunFiles files;
  files.checkpoint = checkpoint;
  files.result = (ckpt.parent_path().parent_path() / (ckpt.stem().string() + ".h5")).string();
  if (!fs::is_regular_file(files.result))
    throw ConfigError(checkpoint + ": its run's result file " + files.result +
                      " does not exist (a checkpoint lives in <results>/checkpoints/)");
  return files;
}

std::vector<RunFiles> complete_runs_in(const std::string& folder,
                                       std::vector<std::string>* left_out) {
  std::vector<RunFiles> out;
  for (const auto& file : list_run_files(folder)) {
    const RunRecord r = read_run_record(file);
    const fs::path ckpt =
        fs::path(folder) / "checkpoints" / (fs::path(file).stem().string() + ".ckpt");
    if (r.status != RunState::complete) {
      if (left_out) left_out->push_back(file + ": " + to_string(r.status) + ", not analysed");
    } else if (!fs::is_regular_file(ckpt)) {
      if (left_out) left_out->push_back(file + ": no checkpoint " + ckpt.string());
    } else {
      out.push_back({ckpt.string(), file});
    }
  }
  return out;
}

AnalysisModel load_analysis_model(const Registry& registry, const std::string& checkpoint,
                                  const std::string& device) {
  CheckpointModel cm = load_checkpoint_model(registry, checkpoint);
  AnalysisModel m;
  m.experiment = std::move(cm.experiment);
  m.epoch = cm.epoch;
  m.backbone = cm.backbone;
  bool found = false;
  for (const auto& r : expand_grid(m.experiment)) {
    if (r.id != cm.run_id) continue;
    m.run = r;
    found = true;
  }
  if (!found)
    throw RuntimeError(checkpoint + ": run " + cm.run_id +
                       " is not in the grid of the experiment the checkpoint records");
  const Setup& setup = m.experiment.setups[m.run.setup];
  m.train_set = make_train_set(registry, m.experiment.train_data, m.backbone->input_size(),
                               static_cast<std::uint64_t>(m.run.seed));
  m.head = make_head(registry, setup.head, m.backbone->embedding_dim(), m.train_set->num_classes(),
                     one_process(), static_cast<std::uint64_t>(m.run.seed));
  load_state_dict(*m.head, load_tensor_dict_from_checkpoint(checkpoint, "head"),
                  checkpoint + " (head)");
  m.device = c10::Device(resolve_device(device.empty() ? m.experiment.device : device));
  m.backbone->to(m.device);
  m.head->to(m.device);
  return m;
}

AnalysisSettings settings_for(const Experiment& e, const std::optional<AnalysisSettings>& given) {
  if (given) return *given;
  if (e.analysis) return *e.analysis;
  return AnalysisSettings{};
}

double analysis_rho(const AnalysisSettings& settings, const RunSpec& run) {
  if (settings.rho) return *settings.rho;
  if (run.rho && *run.rho > 0) return *run.rho;
  return settings.default_rho;
}

namespace {

// A measure's progress: its stage, steps done and their total.
using StageReport = std::function<void(const std::string&, std::int64_t, std::int64_t)>;
using Arrays = std::map<std::string, AnalysisArray>;

// The Hessian's top eigenvalues and its Hutchinson trace, each when asked for.
void measure_hessian(const flatness::LossFunction& f, const AnalysisSettings& s,
                     const StageReport& report, Arrays& a) {
  if (s.top_k > 0) {
    flatness::EigenOptions o;
    o.top_k = s.top_k;
    o.tolerance = s.tolerance;
    o.max_iterations = s.max_iterations;
    o.seed = stream(s.seed, 1);
    auto r = flatness::top_eigenvalues(
        f, o, [&](std::int64_t d, std::int64_t t) { report("eigenvalues", d, t); });
    a["hessian/eigenvalues"] = vector_of(r.eigenvalues);
    a["hessian/iterations"] =
        vector_of(std::vector<double>(r.iterations.begin(), r.iterations.end()));
  }
  if (s.trace_samples > 0) {
    flatness::TraceOptions o;
    o.tolerance = s.trace_tolerance;
    o.max_samples = s.trace_samples;
    o.seed = stream(s.seed, 2);
    auto r = flatness::hutchinson_trace(
        f, o, [&](std::int64_t d, std::int64_t t) { report("trace", d, t); });
    a["trace/mean"] = scalar(r.mean);
    a["trace/standard_error"] = scalar(r.standard_error);
    a["trace/samples"] = scalar(static_cast<double>(r.samples));
  }
}

// Sharpness in the rho-ball: the worst case (and its adaptive form), then the average case.
void measure_sharpness(const flatness::LossFunction& f, const AnalysisSettings& s, double rho,
                       const StageReport& report, Arrays& a) {
  a["sharpness/rho"] = scalar(rho);
  for (bool adaptive : {false, true}) {
    if (adaptive && !s.adaptive) continue;
    flatness::WorstCaseOptions o;
    o.rho = rho;
    o.steps = s.ascent_steps;
    o.step_size = s.ascent_step;
    o.adaptive = adaptive;
    o.eta = s.eta;
    o.seed = stream(s.seed, 3);
    const std::string stage = adaptive ? "adaptive sharpness" : "sharpness";
    std::int64_t done = 0;
    auto r = flatness::worst_case_sharpness(f, o, [&] { report(stage, ++done, s.ascent_steps); });
    a["sharpness/loss"] = scalar(r.loss);
    a[adaptive ? "sharpness/worst_case_adaptive" : "sharpness/worst_case"] = scalar(r.sharpness);
  }
  if (s.average_samples > 0) {
    flatness::AverageCaseOptions o;
    o.rho = rho;
    o.samples = s.average_samples;
    o.seed = stream(s.seed, 4);
    std::int64_t done = 0;
    auto r = flatness::average_case_sharpness(
        f, o, [&] { report("average sharpness", ++done, s.average_samples); });
    a["sharpness/average_case"] = scalar(r.sharpness);
    a["sharpness/average_case_standard_error"] = scalar(r.standard_error);
  }
}

// The loss along one and across two filter-normalised directions, each when asked for.
void measure_landscapes(const flatness::LossFunction& f, const AnalysisSettings& s,
                        const StageReport& report, Arrays& a) {
  if (s.landscape_points > 0) {
    at::Generator g = flatness::make_generator(stream(s.seed, 5));
    const ParamVector d = flatness::filter_normalized_direction(f.parameters, g);
    const auto alphas = flatness::grid(-s.landscape_range, s.landscape_range, s.landscape_points);
    std::int64_t done = 0;
    a["landscape/alpha"] = vector_of(alphas);
    a["landscape/loss_1d"] = vector_of(flatness::landscape_1d(
        f, d, alphas, [&] { report("landscape 1-D", ++done, s.landscape_points); }));
  }
  if (s.landscape_2d_points > 0) {
    at::Generator g = flatness::make_generator(stream(s.seed, 6));
    const ParamVector d1 = flatness::filter_normalized_direction(f.parameters, g);
    const ParamVector d2 = flatness::filter_normalized_direction(f.parameters, g);
    const auto ab = flatness::grid(-s.landscape_range, s.landscape_range, s.landscape_2d_points);
    const std::int64_t total = s.landscape_2d_points * s.landscape_2d_points;
    std::int64_t done = 0;
    a["landscape/alpha_2d"] = vector_of(ab);
    a["landscape/beta_2d"] = vector_of(ab);
    a["landscape/loss_2d"] = {
        {ab.size(), ab.size()},
        flatness::landscape_2d(f, d1, d2, ab, ab, [&] { report("landscape 2-D", ++done, total); })};
  }
}

}  // namespace

AnalysisRecord measure_flatness(AnalysisModel& model, const AnalysisSettings& s,
                                const AnalysisCallback& progress) {
  const StageReport report = [&progress](const std::string& stage, std::int64_t done,
                                         std::int64_t total) {
    if (progress) progress({stage, done, total});
  };
  flatness::ModelLoss loss(model.backbone, model.head, analysis_batches(model, s),
                           s.batch_norm == "train");
  const flatness::LossFunction& f = loss.function();
  AnalysisRecord rec;
  measure_hessian(f, s, report, rec.arrays);
  measure_sharpness(f, s, analysis_rho(s, model.run), report, rec.arrays);
  measure_landscapes(f, s, report, rec.arrays);
  return rec;
}

bool analyze_run(const Registry& registry, const RunFiles& files, const AnalyzeOptions& options) {
  RunRecord record = read_run_record(files.result);
  if (record.status != RunState::complete)
    throw ConfigError(files.result + ": run is " + to_string(record.status) +
                      "; only complete runs are analysed");
  const std::string toml = attribute(record, "config_toml");
  const Experiment recorded =
      toml.empty() ? Experiment{} : parse_experiment(toml, files.result + " (config_toml)");
  const AnalysisSettings settings = settings_for(recorded, options.settings);
  auto done = record.analysis.attributes.find("");
  if (!options.force && done != record.analysis.attributes.end() &&
      done->second.count("settings") && done->second.at("settings") == settings.canonical())
    return false;

  const auto start = std::chrono::steady_clock::now();
  AnalysisModel model = load_analysis_model(registry, files.checkpoint, options.device);
  AnalysisRecord measured = measure_flatness(model, settings, options.progress);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // The file may have changed while we measured (a line written by another process): read it
  // again, keep its lines, replace the rest.
  record = read_run_record(files.result);
  AnalysisRecord merged;
  for (const auto& [path, array] : record.analysis.arrays)
    if (path.rfind("line/", 0) == 0) merged.arrays[path] = array;
  for (const auto& [path, attrs] : record.analysis.attributes)
    if (path.rfind("line/", 0) == 0) merged.attributes[path] = attrs;
  for (auto& [path, array] : measured.arrays) merged.arrays[path] = std::move(array);
  auto& attrs = merged.attributes[""];
  attrs = settings.as_attributes();
  attrs["settings"] = settings.canonical();
  attrs["checkpoint"] = files.checkpoint;
  attrs["checkpoint_epoch"] = std::to_string(model.epoch);
  attrs["device"] = model.device.str();
  attrs["seconds"] = std::to_string(seconds);
  attrs["time"] = utc_timestamp();
  record.analysis = std::move(merged);
  write_run_record(files.result, record);
  return true;
}

void analyze_line(const Registry& registry, const RunFiles& a_files, const RunFiles& b_files,
                  const LineOptions& options) {
  AnalysisModel a = load_analysis_model(registry, a_files.checkpoint, options.device);
  AnalysisModel b = load_analysis_model(registry, b_files.checkpoint, options.device);
  const AnalysisSettings s = settings_for(a.experiment, options.settings);
  const ParamVector wa = flatness::clone(flatness::trainable_parameters(*a.backbone, *a.head));
  const ParamVector wb = flatness::clone(flatness::trainable_parameters(*b.backbone, *b.head));
  const std::vector<at::Tensor> ba = float_buffers(a), bb = float_buffers(b);
  auto same_shapes = [](const std::vector<at::Tensor>& x, const std::vector<at::Tensor>& y) {
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i)
      if (!x[i].sizes().equals(y[i].sizes())) return false;
    return true;
  };
  if (!same_shapes(wa, wb) || !same_shapes(ba, bb))
    throw ConfigError(a_files.checkpoint + " and " + b_files.checkpoint +
                      ": the models differ in their parameters' shapes (same backbone and number "
                      "of classes needed for a line between them)");
  const std::vector<at::Tensor> ba_saved = flatness::clone(ba), bb_saved = flatness::clone(bb);

  std::vector<std::pair<std::string, std::shared_ptr<VerificationSet>>> sets;
  if (options.accuracy)
    for (const auto& ev : a.experiment.eval)
      sets.emplace_back(ev.name,
                        make_verification_set(registry, ev.data, a.backbone->input_size(), 0));

  const auto ts = flatness::grid(options.from, options.to, options.points);
  std::vector<double> losses;
  std::map<std::string, std::vector<double>> accuracy;
  {
    flatness::ModelLoss loss(a.backbone, a.head, analysis_batches(a, s), s.batch_norm == "train");
    const flatness::LossFunction& f = loss.function();
    for (std::size_t i = 0; i < ts.size(); ++i) {
      flatness::assign(f.parameters, flatness::interpolate(wa, wb, ts[i]));
      flatness::assign(ba, flatness::interpolate(ba_saved, bb_saved, ts[i]));
      losses.push_back(flatness::loss_value(f));
      for (const auto& [name, set] : sets) {
        const std::int64_t batch = s.batch_size > 0 ? s.batch_size : a.experiment.train.batch_size;
        accuracy[name].push_back(evaluate(*a.backbone, *set, batch, a.device).accuracy);
      }
      if (options.progress)
        options.progress(
            {"line", static_cast<std::int64_t>(i + 1), static_cast<std::int64_t>(ts.size())});
    }
    flatness::assign(f.parameters, wa);  // A's own weights again; the buffers by ModelLoss
  }

  RunRecord record = read_run_record(a_files.result);
  const std::string group = "line/" + b.run.id;
  for (auto it = record.analysis.arrays.begin(); it != record.analysis.arrays.end();)
    it = it->first.rfind(group + "/", 0) == 0 ? record.analysis.arrays.erase(it) : std::next(it);
  record.analysis.arrays[group + "/t"] = vector_of(ts);
  record.analysis.arrays[group + "/loss"] = vector_of(losses);
  for (const auto& [name, values] : accuracy)
    record.analysis.arrays[group + "/accuracy/" + name] = vector_of(values);
  auto attrs = s.as_attributes();
  attrs["checkpoint_a"] = a_files.checkpoint;
  attrs["checkpoint_b"] = b_files.checkpoint;
  attrs["run_b"] = b.run.id;
  attrs["setup_b"] = b.experiment.setups[b.run.setup].name;
  attrs["seed_b"] = std::to_string(b.run.seed);
  attrs["time"] = utc_timestamp();
  record.analysis.attributes[group] = attrs;
  write_run_record(a_files.result, record);
}

}  // namespace flatface
