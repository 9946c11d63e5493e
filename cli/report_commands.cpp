// flatface report RESULT_DIR... : mean ± std tables over seeds, the gap table, the sweeps of rho
// and of swept options, figures.
#include <fstream>
#include <iostream>

#include "aggregate.hpp"
#include "common.hpp"
#include "figures.hpp"
#include "report_tables.hpp"

namespace flatface::cli {
namespace {

struct ReportArgs {
  std::vector<std::string> results;
  std::string format = "md";
  std::string out;
  std::string figures;
  std::string select = "final";
};
ReportArgs report_args;

int report(const ReportArgs& a) {
  using namespace flatface::reports;
  Format format = parse_format(a.format);
  Selection selection = parse_selection(a.select);
  Aggregate agg = aggregate_runs(load_results(a.results), selection);
  if (agg.groups.empty() && agg.not_averaged.empty())
    throw ConfigError("no result files (*.h5) in the given folders");

  std::string text = render_report(agg, format);
  if (a.out.empty()) {
    std::cout << text;
  } else {
    std::ofstream file(a.out);
    file << text;
    if (!file) throw RuntimeError(a.out + ": cannot write the report");
    std::cerr << "wrote " << a.out << '\n';
  }
  // Markdown and LaTeX carry these under the table; CSV has no room for them.
  if (format == Format::csv)
    for (const auto& line : notes_for_stderr(agg)) std::cerr << line << '\n';

  if (!a.figures.empty()) {
    FigureFiles figs = write_figures(agg, a.figures);
    for (const auto& f : figs.written) std::cerr << "wrote " << f << '\n';
    for (const auto& s : figs.skipped) std::cerr << "skipped " << s << '\n';
  }
  return 0;
}

}  // namespace

void report_options(CLI::App& cmd) {
  cmd.add_option("results", report_args.results,
                 "Result folders (their *.h5 files) or result files")
      ->required()
      ->check(CLI::ExistingPath);
  cmd.add_option("--format", report_args.format, "md | latex | csv (CSV numbers are in percent)")
      ->check(CLI::IsMember({"md", "markdown", "latex", "tex", "csv"}));
  cmd.add_option("--out", report_args.out, "Write the report to FILE instead of stdout");
  cmd.add_option("--figures", report_args.figures,
                 "Folder for gap, rho_sweep, sweep_KEY and, for analysed runs, sharpness_gap, "
                 "landscape_1d and landscape_2d_<setup> figures (.png/.svg, drawn with gnuplot)");
  cmd.add_option("--select", report_args.select,
                 "Epoch per run: final, or best (the best average benchmark accuracy: selects on "
                 "the test sets)")
      ->check(CLI::IsMember({"final", "best"}));
}

int report_command(const Globals&) {
  return report(report_args);
}

}  // namespace flatface::cli
