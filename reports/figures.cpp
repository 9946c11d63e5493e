#include "figures.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "flatface/options.hpp"
#include "report_tables.hpp"

extern char** environ;

namespace flatface::reports {
namespace {

namespace fs = std::filesystem;

std::string gnuplot_binary() {
  const char* env = std::getenv("FLATFACE_GNUPLOT");
  return env && *env ? env : "gnuplot";
}

// Runs gnuplot with `args`, stdout and stderr to `log` (or /dev/null); returns its exit status.
int run_gnuplot(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> all{gnuplot_binary()};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const char* target = log.empty() ? "/dev/null" : log.c_str();
  posix_spawn_file_actions_addopen(&actions, 1, target, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0)
    throw RuntimeError("cannot run " + all[0] + " (" + std::strerror(rc) +
                       "): --figures needs gnuplot on PATH, or set FLATFACE_GNUPLOT");
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// pngcairo draws anti-aliased figures; the libgd `png` terminal is the fallback.
const std::string& png_terminal() {
  static const std::string terminal =
      run_gnuplot({"-e", "set terminal pngcairo"}, "") == 0 ? "pngcairo" : "png";
  return terminal;
}

// A double-quoted gnuplot string (its escapes are backslash sequences).
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// A single-quoted gnuplot string: no escapes except '' for a quote. Used for file names.
std::string path_literal(const fs::path& p) {
  std::string out = "'";
  for (char c : p.string()) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string number(double v) {
  if (std::isnan(v)) return "?";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// The data file beside a figure's script: <stem>.dat.
fs::path data_file(const fs::path& stem) {
  fs::path p = stem;
  p += ".dat";
  return p;
}

// The source of the i-th clause of a plot over the figure's data file: the file by name first,
// then '' (the same file again).
std::string plot_source(const fs::path& stem, std::size_t i) {
  return i == 0 ? path_literal(data_file(stem)) : ", \\\n     ''";
}

// Appends one group's data as the next block of a data file (blocks are two blank lines apart, so
// that `index i` selects the i-th) and its title to `titles`.
void add_block(std::ostringstream& dat, std::vector<std::string>& titles, const std::string& title,
               const std::string& block) {
  if (!titles.empty()) dat << "\n\n";
  dat << "# " << title << '\n' << block;
  titles.push_back(title);
}

// The script once per terminal: PNG, then SVG, with the same plot.
std::string script(const fs::path& stem, const std::string& setup, const std::string& plot) {
  std::ostringstream gp;
  fs::path png = stem, svg = stem;
  png += ".png";
  svg += ".svg";
  gp << "# Written by flatface report; run `gnuplot " << stem.filename().string()
     << ".gp` to redraw.\n"
     << "set datafile missing '?'\n"
     << setup << "set terminal " << png_terminal() << " size 960,560 noenhanced\n"
     << "set output " << path_literal(png) << "\n"
     << plot << "set terminal svg size 960,560 noenhanced dynamic\n"
     << "set output " << path_literal(svg) << "\n"
     << plot << "unset output\n";
  return gp.str();
}

void draw(const fs::path& stem, const std::string& dat, const std::string& gp, FigureFiles& out) {
  fs::path dat_path = data_file(stem), gp_path = stem, log = stem;
  gp_path += ".gp";
  log += ".log";
  std::ofstream(dat_path) << dat;
  std::ofstream(gp_path) << gp;
  int rc = run_gnuplot({gp_path.string()}, log.string());
  std::string messages;
  {
    std::ifstream in(log);
    std::ostringstream s;
    s << in.rdbuf();
    messages = s.str();
  }
  if (rc != 0)
    throw RuntimeError(gp_path.string() + ": gnuplot exited with status " + std::to_string(rc) +
                       (messages.empty() ? "" : ": " + messages));
  fs::remove(log);
  for (const char* ext : {".png", ".svg"}) {
    fs::path image = stem;
    image += ext;
    if (!fs::exists(image) || fs::file_size(image) == 0)
      throw RuntimeError(gp_path.string() + ": gnuplot did not write " + image.string());
    out.written.push_back(image.string());
  }
}

// Fig. 2-3: one cluster per head, one bar per perturbation, height = mean gap, error = std.
void gap_figure(const Aggregate& agg, const fs::path& folder, FigureFiles& out) {
  std::vector<std::string> heads, variants;
  std::map<std::string, std::set<std::string>> head_strings;  // plugin name -> attribute texts
  std::map<std::string, int> per_variant;                     // (head, perturbation) groups
  for (const auto& g : agg.groups) {
    head_strings[plugin_name(g.head)].insert(g.head);
    per_variant[g.head + '\n' + plugin_name(g.perturbation)]++;
  }
  auto head_label = [&](const Group& g) {
    std::string name = plugin_name(g.head);
    return head_strings[name].size() > 1 || name.empty() ? g.head : name;
  };
  auto variant_label = [&](const Group& g) {
    std::string name = plugin_name(g.perturbation);
    std::string label = name == "none" ? "baseline" : name;
    if (per_variant[g.head + '\n' + name] > 1) {
      if (!std::isnan(g.rho_value)) label += " rho=" + number(g.rho_value);
      if (const std::string swept = swept_text(g.swept); !swept.empty()) label += " " + swept;
    }
    return label;
  };
  std::map<std::pair<std::string, std::string>, const Group*> cell;
  for (const auto& g : agg.groups) {
    auto h = head_label(g), v = variant_label(g);
    if (std::find(heads.begin(), heads.end(), h) == heads.end()) heads.push_back(h);
    if (std::find(variants.begin(), variants.end(), v) == variants.end()) variants.push_back(v);
    cell[{h, v}] = &g;
  }

  std::ostringstream dat;
  dat << "# generalization gap (percentage points) = train accuracy - average benchmark accuracy\n"
      << "# head";
  for (const auto& v : variants) dat << "  " << quoted(v) << " std";
  dat << '\n';
  for (const auto& h : heads) {
    dat << quoted(h);
    for (const auto& v : variants) {
      auto it = cell.find({h, v});
      const Group* g = it == cell.end() ? nullptr : it->second;
      double mean = g ? 100 * g->gap.mean : NAN;
      double sd = g ? 100 * g->gap.std : NAN;
      dat << ' ' << number(mean) << ' ' << (std::isnan(sd) ? "0" : number(sd));
    }
    dat << '\n';
  }

  fs::path stem = folder / "gap";
  std::ostringstream setup;
  setup << "set style data histograms\n"
        << "set style histogram errorbars gap 2 lw 1\n"
        << "set style fill solid 0.85 border -1\n"
        << "set boxwidth 0.9\n"
        << "set grid ytics\n"
        << "set key outside right top\n"
        << "set title "
        << quoted(std::string("Generalization gap (") + to_string(agg.selection) +
                  " epoch): training accuracy - average benchmark accuracy")
        << "\n"
        << "set ylabel \"gap (percentage points)\"\n";
  // Bars start at zero: an axis cut above it would exaggerate the differences.
  bool all_positive = std::all_of(agg.groups.begin(), agg.groups.end(), [](const Group& g) {
    return std::isnan(g.gap.mean) || g.gap.mean >= 0;
  });
  if (all_positive) setup << "set yrange [0:*]\n";
  std::ostringstream plot;
  plot << "plot ";
  for (std::size_t i = 0; i < variants.size(); ++i) {
    plot << plot_source(stem, i) << " using " << 2 + 2 * i << ':' << 3 + 2 * i
         << (i ? "" : ":xtic(1)") << " title " << quoted(variants[i]);
  }
  plot << '\n';
  draw(stem, dat.str(), script(stem, setup.str(), plot.str()), out);
}

// "rho_sweep" for rho (its name since the first reports), "sweep_head.m" for an option.
fs::path sweep_stem(const fs::path& folder, const SweepView& view) {
  if (view.key == "rho") return folder / "rho_sweep";
  std::string name = "sweep_";
  for (char c : view.key) name += std::isalnum(static_cast<unsigned char>(c)) || c == '.' ? c : '_';
  return folder / name;
}

// Average accuracy against the swept key, one line per series, error bars = std over seeds.
void sweep_figure(const Aggregate& agg, const SweepView& view, const fs::path& folder,
                  FigureFiles& out) {
  const std::string key = view.key;
  std::ostringstream dat;
  dat << "# " << key << "  average accuracy (%)  std over seeds; one block per series\n";
  for (std::size_t i = 0; i < view.series.size(); ++i) {
    if (i) dat << "\n\n";
    dat << "# " << view.series[i].label << '\n';
    for (const auto& [v, g] : view.series[i].by_value)
      dat << number(v) << ' ' << number(100 * g->average.mean) << ' '
          << (std::isnan(g->average.std) ? "0" : number(100 * g->average.std)) << '\n';
  }
  const fs::path stem = sweep_stem(folder, view);
  // A log axis when the values are positive and span a factor of four or more (ρ from 0.02 to
  // 0.5, a learning rate); a linear one otherwise (a margin from 0.3 to 0.5).
  const double lo = *view.values.begin(), hi = *view.values.rbegin();
  std::ostringstream setup;
  if (lo > 0 && hi / lo >= 4) setup << "set logscale x 2\n";
  setup << "set grid\nset key bottom right\n"
        << "set title "
        << quoted("Average accuracy against " + key + " (" + to_string(agg.selection) + " epoch)")
        << "\nset xlabel " << quoted(key) << "\nset ylabel \"average accuracy (%)\"\n"
        << "set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05\nset xtics (";
  bool first = true;
  for (double v : view.values) {
    setup << (first ? "" : ", ") << quoted(number(v)) << ' ' << number(v);
    first = false;
  }
  setup << ")\n";
  std::ostringstream plot;
  plot << "plot ";
  for (std::size_t i = 0; i < view.series.size(); ++i)
    plot << plot_source(stem, i) << " index " << i
         << " using 1:2:3 with yerrorlines lw 2 pt 7 title " << quoted(view.series[i].label);
  plot << '\n';
  draw(stem, dat.str(), script(stem, setup.str(), plot.str()), out);
}

// File-name part of a setup name: letters, digits, '-', '_', '.'; anything else becomes '_'.
std::string file_part(const std::string& name) {
  std::string out;
  for (unsigned char c : name)
    out += std::isalnum(c) || c == '-' || c == '_' || c == '.' ? static_cast<char>(c) : '_';
  return out;
}

std::string group_title(const Group& g) {
  return g.setup + (std::isnan(g.rho_value) ? "" : " rho=" + number(g.rho_value));
}

// Sharpness (worst case) against the generalization gap, one point per run, one series per
// group: does sharpness track the gap?
void sharpness_gap_figure(const Aggregate& agg, const fs::path& folder, FigureFiles& out) {
  std::ostringstream dat;
  dat << "# sharpness (worst case, flatface analyze)  gap (percentage points); one block per "
         "setup, one row per run\n";
  std::vector<std::string> titles;
  for (const auto& g : agg.groups) {
    std::ostringstream block;
    for (const auto& r : g.runs) {
      auto it = r.flatness.find("sharpness");
      if (it == r.flatness.end() || std::isnan(r.gap)) continue;
      block << number(it->second) << ' ' << number(100 * r.gap) << "  # seed " << r.seed << '\n';
    }
    if (block.str().empty()) continue;
    add_block(dat, titles, group_title(g), block.str());
  }
  fs::path stem = folder / "sharpness_gap";
  std::ostringstream setup;
  setup << "set grid\nset key outside right top\n"
        << "set title \"Sharpness against the generalization gap (one point per run)\"\n"
        << "set xlabel \"worst-case sharpness max L(w+d) - L(w), |d| <= rho\"\n"
        << "set ylabel \"gap (percentage points)\"\n"
        << "set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05\n";
  std::ostringstream plot;
  plot << "plot ";
  for (std::size_t i = 0; i < titles.size(); ++i)
    plot << plot_source(stem, i) << " index " << i << " using 1:2 with points pt 7 ps 1.5 title "
         << quoted(titles[i]);
  plot << '\n';
  draw(stem, dat.str(), script(stem, setup.str(), plot.str()), out);
}

// The 1-D landscapes: per group, the mean loss over seeds at each α and a band of ± one std.
void landscape_1d_figure(const Aggregate& agg, const fs::path& folder, FigureFiles& out) {
  std::ostringstream dat;
  dat << "# alpha  mean loss  mean - std  mean + std (over seeds); one block per setup\n";
  std::vector<std::string> titles;
  for (const auto& g : agg.groups) {
    const RunResult* first = nullptr;
    for (const auto& r : g.runs)
      if (!r.landscape_alpha.empty() && r.landscape_loss.size() == r.landscape_alpha.size()) {
        first = &r;
        break;
      }
    if (!first) continue;
    std::ostringstream block;
    for (std::size_t i = 0; i < first->landscape_alpha.size(); ++i) {
      std::vector<double> losses;  // the runs with the same α grid
      for (const auto& r : g.runs)
        if (r.landscape_alpha == first->landscape_alpha) losses.push_back(r.landscape_loss[i]);
      MeanStd m = mean_std(losses);
      const double sd = std::isnan(m.std) ? 0 : m.std;
      block << number(first->landscape_alpha[i]) << ' ' << number(m.mean) << ' '
            << number(m.mean - sd) << ' ' << number(m.mean + sd) << '\n';
    }
    add_block(dat, titles, group_title(g), block.str());
  }
  fs::path stem = folder / "landscape_1d";
  std::ostringstream setup;
  setup << "set grid\nset key outside right top\nset style fill transparent solid 0.2 noborder\n"
        << "set title \"Training loss along a filter-normalised random direction (band: +- std "
           "over seeds)\"\n"
        << "set xlabel \"alpha\"\nset ylabel \"L(w + alpha d)\"\n";
  std::ostringstream plot;
  plot << "plot ";
  for (std::size_t i = 0; i < titles.size(); ++i) {
    plot << plot_source(stem, i) << " index " << i << " using 1:3:4 with filledcurves lc " << i + 1
         << " notitle, \\\n     '' index " << i << " using 1:2 with lines lw 2 lc " << i + 1
         << " title " << quoted(titles[i]);
  }
  plot << '\n';
  draw(stem, dat.str(), script(stem, setup.str(), plot.str()), out);
}

// The 2-D landscape of each group (mean over seeds) as filled contours.
void landscape_2d_figures(const Aggregate& agg, const fs::path& folder, FigureFiles& out) {
  for (const auto& g : agg.groups) {
    const RunResult* first = nullptr;
    for (const auto& r : g.runs)
      if (!r.landscape_alpha_2d.empty() &&
          r.landscape_loss_2d.size() == r.landscape_alpha_2d.size() * r.landscape_beta_2d.size()) {
        first = &r;
        break;
      }
    if (!first) continue;
    const auto& alphas = first->landscape_alpha_2d;
    const auto& betas = first->landscape_beta_2d;
    std::ostringstream dat;
    dat << "# alpha beta mean loss over seeds; " << group_title(g) << '\n';
    for (std::size_t i = 0; i < alphas.size(); ++i) {
      for (std::size_t j = 0; j < betas.size(); ++j) {
        std::vector<double> losses;
        for (const auto& r : g.runs)
          if (r.landscape_alpha_2d == alphas && r.landscape_beta_2d == betas)
            losses.push_back(r.landscape_loss_2d[i * betas.size() + j]);
        dat << number(alphas[i]) << ' ' << number(betas[j]) << ' ' << number(mean_std(losses).mean)
            << '\n';
      }
      dat << '\n';
    }
    fs::path stem = folder / ("landscape_2d_" + file_part(group_title(g)));
    std::ostringstream setup;
    setup << "set view map\nset pm3d at b\nunset surface\nset contour base\n"
          << "set cntrparam levels auto 12\nunset clabel\nset key off\n"
          << "set title " << quoted("Training loss on a filter-normalised plane: " + group_title(g))
          << "\nset xlabel \"alpha\"\nset ylabel \"beta\"\nset size ratio -1\n";
    std::ostringstream plot;
    plot << "splot " << path_literal(data_file(stem))
         << " using 1:2:3 with lines lc rgb \"black\"\n";
    draw(stem, dat.str(), script(stem, setup.str(), plot.str()), out);
  }
}

}  // namespace

FigureFiles write_figures(const Aggregate& agg, const std::string& folder) {
  FigureFiles out;
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (!fs::is_directory(folder))
    throw RuntimeError(folder + ": cannot create the figures folder (" + ec.message() + ")");
  if (has_train_accuracy(agg))
    gap_figure(agg, folder, out);
  else
    out.skipped.push_back("gap: no run logged a training accuracy");
  const auto views = sweep_views(agg);
  for (const auto& view : views) sweep_figure(agg, view, folder, out);
  if (views.empty())
    out.skipped.push_back(
        "sweeps: no setup was run with two or more values of rho or of a "
        "swept option");
  // The flatness figures, for results analysed by `flatface analyze` (others: not a word).
  const bool any_analysis = std::any_of(agg.groups.begin(), agg.groups.end(), [](const Group& g) {
    return std::any_of(g.runs.begin(), g.runs.end(), [](const RunResult& r) {
      return !r.flatness.empty() || !r.landscape_alpha.empty() || !r.landscape_alpha_2d.empty();
    });
  });
  if (!any_analysis) return out;
  const bool sharpness = std::any_of(agg.groups.begin(), agg.groups.end(), [](const Group& g) {
    return !g.flatness_values("sharpness").empty();
  });
  if (sharpness && has_train_accuracy(agg))
    sharpness_gap_figure(agg, folder, out);
  else
    out.skipped.push_back("sharpness_gap: no run has both a sharpness and a training accuracy");
  const bool curves = std::any_of(agg.groups.begin(), agg.groups.end(), [](const Group& g) {
    return std::any_of(g.runs.begin(), g.runs.end(),
                       [](const RunResult& r) { return !r.landscape_alpha.empty(); });
  });
  if (curves)
    landscape_1d_figure(agg, folder, out);
  else
    out.skipped.push_back("landscape_1d: no analysed run has a 1-D landscape");
  landscape_2d_figures(agg, folder, out);
  return out;
}

}  // namespace flatface::reports
