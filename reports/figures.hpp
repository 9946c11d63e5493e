// The report's figures, drawn by gnuplot from a .dat file and a .gp script kept next to them:
// the generalization gap as grouped bars (paper, Figs. 2-3) and the rho sweep as lines.
#pragma once

#include <string>
#include <vector>

#include "aggregate.hpp"

namespace flatface::reports {

struct FigureFiles {
  std::vector<std::string> written;  // image paths
  std::vector<std::string> skipped;  // why a figure was not drawn
};

// gap.{dat,gp,png,svg} (when training accuracies exist), rho_sweep.{dat,gp,png,svg} (when a
// setup has two or more rho values) and sweep_<key>.{...} for each swept option with two or more
// values (e.g. sweep_head.m.png; see sweep_views) in `folder`, created if needed. gnuplot is
// `$FLATFACE_GNUPLOT` or `gnuplot` on PATH. Throws RuntimeError when gnuplot is missing or fails.
FigureFiles write_figures(const Aggregate& agg, const std::string& folder);

}  // namespace flatface::reports
