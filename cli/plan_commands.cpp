// flatface plan: the runs of a grid, as a list, as JSON for other schedulers, or as a Slurm job
// array script with one array task per run.
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <variant>

#include "common.hpp"
#include "training/trainer.hpp"

namespace flatface::cli {

namespace {

namespace fs = std::filesystem;

struct PlanArgs {
  ExperimentArgs experiment;
  std::string format = "text";
  bool sbatch = false;
  int gpus_per_task = -1;  // -1: 1 unless the experiment runs on the CPU
  std::string time;
  int max_parallel = 0;
};
PlanArgs plan_args;

// Single-quoted for bash unless every character is plainly safe.
std::string shell_quote(const std::string& s) {
  static const std::regex safe("[A-Za-z0-9_./=:@%+,-]+");
  if (std::regex_match(s, safe)) return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// flatface run FILE --set ... --only id=ID: what one run's job executes.
std::vector<std::string> run_argv(const PlanArgs& a, const RunSpec& r) {
  std::vector<std::string> argv{"flatface", "run", a.experiment.file};
  for (const auto& o : a.experiment.overrides) argv.insert(argv.end(), {"--set", o});
  argv.insert(argv.end(), {"--only", "id=" + r.id});
  return argv;
}

std::string rho_text(const RunSpec& r) {
  return r.rho ? format_rho(*r.rho) : "-";
}

// "  head.m=0.3 train.lr=0.05": the swept values besides rho, which has its own column.
std::string swept_text(const RunSpec& r) {
  const std::string label = swept_label(r);
  return label.empty() ? "" : "  " + label;
}

// {"head.m": 0.3, "perturbation.rho": 0.05}: numbers and true/false as such, text as strings.
nlohmann::ordered_json swept_json(const RunSpec& r) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const auto& v : r.swept) std::visit([&](const auto& x) { out[v.key] = x; }, v.value);
  return out;
}

}  // namespace

void print_plan_text(const Experiment& e, const std::vector<RunSpec>& runs) {
  std::cout << "# " << e.name << ": " << runs.size() << " runs -> " << e.output << '\n';
  for (const auto& r : runs)
    std::cout << r.id << "  " << e.setups[r.setup].name << "  seed=" << r.seed
              << "  rho=" << rho_text(r) << swept_text(r) << '\n';
}

namespace {

void print_json(const PlanArgs& a, const Experiment& e, const std::vector<RunSpec>& runs) {
  nlohmann::ordered_json out{{"experiment", e.name},
                             {"file", e.file},
                             {"output", e.output},
                             {"device", e.device},
                             {"overrides", a.experiment.overrides},
                             {"runs", nlohmann::ordered_json::array()}};
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const auto& r = runs[i];
    out["runs"].push_back({{"index", i},
                           {"id", r.id},
                           {"setup", e.setups[r.setup].name},
                           {"seed", r.seed},
                           {"rho", r.rho ? json_number(*r.rho, 10) : nullptr},
                           {"sweep", swept_json(r)},
                           {"result", result_path(e, r)},
                           {"command", run_argv(a, r)}});
  }
  std::cout << out.dump(2) << '\n';
}

// HH:MM:SS, or D-HH:MM:SS, as sbatch takes it.
void check_time(const std::string& t) {
  static const std::regex form(R"((\d+-)?\d{1,2}:\d{2}:\d{2})");
  if (!std::regex_match(t, form))
    throw ConfigError("--time " + t + ": expected HH:MM:SS or D-HH:MM:SS");
}

void print_sbatch(const PlanArgs& a, const Experiment& e, const std::vector<RunSpec>& runs) {
  if (!a.time.empty()) check_time(a.time);
  const int gpus = a.gpus_per_task >= 0 ? a.gpus_per_task : (e.device == "cpu" ? 0 : 1);
  std::string exe = fs::read_symlink("/proc/self/exe").string();
  const std::string cwd = fs::current_path().string();
  const std::string logs = (fs::path(e.output) / "logs").string();
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# Slurm job array for the grid '" << e.name << "' (" << e.file << "): " << runs.size()
    << " runs, one array task per run, each `flatface run --only id=RUN`.\n"
    << "# Submit: sbatch THIS_FILE   (sbatch options on its command line win, e.g. -p PARTITION)\n"
    << "# Watch:  flatface status " << e.output << "    Tables: flatface report " << e.output
    << '\n'
    << "# A task that reaches its time limit saves its run (SIGTERM); submitting again resumes it\n"
    << "# and skips complete runs. Runs claim themselves in " << e.output << "/claims, so a task\n"
    << "# never trains a run that another process is training.\n"
    << "#SBATCH --job-name=" << shell_quote("flatface-" + e.name) << '\n'
    << "#SBATCH --array=0-" << runs.size() - 1;
  if (a.max_parallel > 0) s << '%' << a.max_parallel;
  s << "\n#SBATCH --ntasks=1\n";
  if (gpus > 0) s << "#SBATCH --gpus-per-task=" << gpus << '\n';
  if (!a.time.empty()) s << "#SBATCH --time=" << a.time << '\n';
  s << "#SBATCH --chdir=" << shell_quote(cwd) << '\n'
    << "set -euo pipefail\n\n"
    << "runs=(\n";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const auto& r = runs[i];
    s << "  " << r.id << "  # " << i << ": " << e.setups[r.setup].name << " seed=" << r.seed
      << " rho=" << rho_text(r) << swept_text(r) << '\n';
  }
  s << ")\n\n"
    << "if [[ -z \"${SLURM_ARRAY_TASK_ID:-}\" ]]; then\n"
    << "  echo \"submit this script with sbatch: it runs one run per array task\" >&2\n"
    << "  exit 2\n"
    << "fi\n"
    << "id=${runs[$SLURM_ARRAY_TASK_ID]}\n"
    << "FLATFACE=${FLATFACE:-" << shell_quote(exe) << "}\n"
    << "mkdir -p " << shell_quote(logs) << '\n'
    << "exec \"$FLATFACE\" run " << shell_quote(a.experiment.file);
  for (const auto& o : a.experiment.overrides) s << " --set " << shell_quote(o);
  s << " --only \"id=$id\" --no-report >>" << shell_quote(logs) << "/\"$id.log\" 2>&1\n";
  std::cout << s.str();
}

int plan(const PlanArgs& a) {
  Experiment e = a.experiment.load();
  auto runs = expand_grid(e);
  if (a.sbatch)
    print_sbatch(a, e, runs);
  else if (a.format == "json")
    print_json(a, e, runs);
  else
    print_plan_text(e, runs);
  return 0;
}

}  // namespace

void plan_options(CLI::App& cmd) {
  plan_args.experiment.add_to(cmd);
  cmd.add_option("--format", plan_args.format,
                 "text | json (id, setup, seed, rho, swept values, command per run)")
      ->check(CLI::IsMember({"text", "json"}));
  auto* sbatch = cmd.add_flag("--sbatch", plan_args.sbatch,
                              "Print a Slurm job-array script: one array task per run");
  cmd.add_option("--gpus-per-task", plan_args.gpus_per_task,
                 "With --sbatch: GPUs per task (default 1, 0 for a CPU experiment)")
      ->check(CLI::Range(0, 1024))
      ->needs(sbatch);
  cmd.add_option("--time", plan_args.time, "With --sbatch: time limit per task, HH:MM:SS")
      ->needs(sbatch);
  cmd.add_option("--max-parallel", plan_args.max_parallel,
                 "With --sbatch: at most K tasks at once (the array's %K)")
      ->check(CLI::Range(1, 1000000))
      ->needs(sbatch);
}

int plan_command(const Globals&) {
  return plan(plan_args);
}

}  // namespace flatface::cli
