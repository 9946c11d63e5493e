#include "experiment/analysis_settings.hpp"

#include <cstdio>

namespace flatface {

namespace {

std::string text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

std::map<std::string, std::string> AnalysisSettings::as_attributes() const {
  return {
      {"batches", std::to_string(batches)},
      {"batch_size", std::to_string(batch_size)},
      {"seed", std::to_string(seed)},
      {"batch_norm", batch_norm},
      {"top_k", std::to_string(top_k)},
      {"tolerance", text(tolerance)},
      {"max_iterations", std::to_string(max_iterations)},
      {"trace_samples", std::to_string(trace_samples)},
      {"trace_tolerance", text(trace_tolerance)},
      {"rho", rho ? text(*rho) : "run"},
      {"default_rho", text(default_rho)},
      {"ascent_steps", std::to_string(ascent_steps)},
      {"ascent_step", text(ascent_step)},
      {"adaptive", adaptive ? "true" : "false"},
      {"eta", text(eta)},
      {"average_samples", std::to_string(average_samples)},
      {"landscape_points", std::to_string(landscape_points)},
      {"landscape_range", text(landscape_range)},
      {"landscape_2d_points", std::to_string(landscape_2d_points)},
  };
}

std::string AnalysisSettings::canonical() const {
  std::string out;
  for (const auto& [key, value] : as_attributes()) out += key + "=" + value + ";";
  return out;
}

AnalysisSettings parse_analysis_settings(const Options& o) {
  AnalysisSettings s;
  auto at_least = [&o](const char* key, std::int64_t v, std::int64_t least) {
    if (v < least)
      throw ConfigError(o.pos_of(key).str() + ": " + key + " must be >= " +
                        std::to_string(least) + " for " + o.what() + " (got " +
                        std::to_string(v) + ")");
    return v;
  };
  auto positive = [&o](const char* key, double v) {
    if (!(v > 0))
      throw ConfigError(o.pos_of(key).str() + ": " + key + " must be > 0 for " + o.what() +
                        " (got " + text(v) + ")");
    return v;
  };
  s.batches = at_least("batches", o.get_int("batches", s.batches), 1);
  s.batch_size = at_least("batch_size", o.get_int("batch_size", s.batch_size), 0);
  s.seed = o.get_int("seed", s.seed);
  s.batch_norm = o.get_choice("batch_norm", s.batch_norm, {"eval", "train"});
  s.top_k = at_least("top_k", o.get_int("top_k", s.top_k), 0);
  s.tolerance = positive("tolerance", o.get_double("tolerance", s.tolerance));
  s.max_iterations = at_least("max_iterations", o.get_int("max_iterations", s.max_iterations), 1);
  s.trace_samples = at_least("trace_samples", o.get_int("trace_samples", s.trace_samples), 0);
  s.trace_tolerance = positive("trace_tolerance", o.get_double("trace_tolerance", s.trace_tolerance));
  if (o.find("rho")) s.rho = positive("rho", o.get_double("rho", 0));
  s.default_rho = positive("default_rho", o.get_double("default_rho", s.default_rho));
  s.ascent_steps = at_least("ascent_steps", o.get_int("ascent_steps", s.ascent_steps), 0);
  s.ascent_step = positive("ascent_step", o.get_double("ascent_step", s.ascent_step));
  s.adaptive = o.get_bool("adaptive", s.adaptive);
  s.eta = o.get_double("eta", s.eta);
  if (!(s.eta >= 0))
    throw ConfigError(o.pos_of("eta").str() + ": eta must be >= 0 for " + o.what());
  s.average_samples = at_least("average_samples", o.get_int("average_samples", s.average_samples), 0);
  s.landscape_points =
      at_least("landscape_points", o.get_int("landscape_points", s.landscape_points), 0);
  s.landscape_range = positive("landscape_range", o.get_double("landscape_range", s.landscape_range));
  s.landscape_2d_points =
      at_least("landscape_2d_points", o.get_int("landscape_2d_points", s.landscape_2d_points), 0);
  o.check_all_used();
  return s;
}

}  // namespace flatface
