// Loss landscapes (Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets"): the loss
// along random directions rescaled filter by filter to the weights, on a line or a plane through
// w, and the loss on the straight line between two trained models.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "flatness/loss_function.hpp"

namespace flatface::flatness {

// A Gaussian direction d with, for every filter i of every weight tensor (a slice along dim 0:
// a conv's output channel, a linear layer's output row, a class-weight row),
// d_i ← d_i · ‖w_i‖ / ‖d_i‖ (Li et al. 2018, eq. in Sec. 4). 1-d tensors (BN parameters,
// biases, PReLU slopes) get a zero direction.
ParamVector filter_normalized_direction(const ParamVector& weights, at::Generator& generator);

// L(w + α d) for each α.
std::vector<double> landscape_1d(const LossFunction& f, const ParamVector& d,
                                 const std::vector<double>& alphas,
                                 const std::function<void()>& on_point = {});

// L(w + α d1 + β d2), row-major [alphas.size()][betas.size()].
std::vector<double> landscape_2d(const LossFunction& f, const ParamVector& d1,
                                 const ParamVector& d2, const std::vector<double>& alphas,
                                 const std::vector<double>& betas,
                                 const std::function<void()>& on_point = {});

// n evenly spaced values from `from` to `to` (both included; n = 1: `from`).
std::vector<double> grid(double from, double to, std::int64_t n);

// (1 − t) a + t b.
ParamVector interpolate(const ParamVector& a, const ParamVector& b, double t);

}  // namespace flatface::flatness
