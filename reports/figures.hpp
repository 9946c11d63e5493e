// The report's figures, drawn by gnuplot from a .dat file and a .gp script kept next to them:
// the generalization gap as grouped bars (paper, Figs. 2-3), the rho sweep as lines, and the
// flatness figures (sharpness against the gap, loss landscapes).
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
// values (e.g. sweep_head.m.png; see sweep_views) in `folder`, created if needed; from runs
// analysed by `flatface analyze`: sharpness_gap (sharpness against the gap, a point per run),
// landscape_1d (curves per setup with a ± std band over seeds) and landscape_2d_<setup>
// (contours). gnuplot is `$FLATFACE_GNUPLOT` or `gnuplot` on PATH. Throws RuntimeError when
// gnuplot is missing or fails.
FigureFiles write_figures(const Aggregate& agg, const std::string& folder);

}  // namespace flatface::reports
