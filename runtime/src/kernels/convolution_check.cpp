#include "kernels/convolution_check.hpp"

#include <ATen/Context.h>
#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/grad_mode.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <vector>

namespace flatface {

namespace {

// Deterministic inputs of the given shape in [-1, 1] (no random generator is touched).
at::Tensor wave(at::IntArrayRef shape, double phase) {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return at::sin(at::arange(n, at::kFloat) * 0.7 + phase).reshape(shape);
}

// oneDNN on or off for one scope, as it was afterwards (also when the scope throws).
class OnednnSetting {
 public:
  explicit OnednnSetting(bool enabled) : was_(at::globalContext().userEnabledMkldnn()) {
    at::globalContext().setUserEnabledMkldnn(enabled);
  }
  ~OnednnSetting() { at::globalContext().setUserEnabledMkldnn(was_); }
  OnednnSetting(const OnednnSetting&) = delete;
  OnednnSetting& operator=(const OnednnSetting&) = delete;

 private:
  bool was_;
};

at::Tensor input_gradient(const at::Tensor& x, const at::Tensor& w, const at::Tensor& g,
                          bool onednn) {
  OnednnSetting setting(onednn);
  at::AutoGradMode grad_mode(true);
  at::Tensor leaf = x.clone().set_requires_grad(true);
  const std::vector<std::int64_t> stride{1, 1}, padding{1, 1};
  at::conv2d(leaf, w, {}, stride, padding).backward(g);
  return leaf.grad();
}

}  // namespace

ConvolutionCheck check_onednn_convolution() {
  ConvolutionCheck check;
  if (!at::hasMKLDNN()) return check;
  check.onednn_checked = true;
  // The failing family (3x3, stride 1, padding 1, 4 to 24 channels, batch >= 2) at its edges.
  for (std::int64_t channels : {4, 24}) {
    const at::Tensor x = wave({2, channels, 8, 8}, 0.0);
    const at::Tensor w = wave({channels, channels, 3, 3}, 1.0) * 0.2;
    const at::Tensor g = wave({2, channels, 8, 8}, 2.0);
    const at::Tensor aten = input_gradient(x, w, g, false);
    const at::Tensor onednn = input_gradient(x, w, g, true);
    const double scale = std::max(aten.abs().max().item<double>(), 1e-30);
    const double diff = (onednn - aten).abs().max().item<double>();
    const double relative = std::isfinite(diff) ? diff / scale : INFINITY;
    if (!check.probe.empty()) check.probe += ", ";
    check.probe += "[2, " + std::to_string(channels) + ", 8, 8]";
    check.max_difference = std::max(check.max_difference, relative);
  }
  // ATen and oneDNN add in different orders: 1e-4 of the largest entry is rounding, O(1) is not.
  check.onednn_agrees = check.max_difference <= 1e-4;
  return check;
}

const ConvolutionCheck& ensure_trusted_cpu_convolutions() {
  static ConvolutionCheck check;
  static std::once_flag once;
  std::call_once(once, [] {
    check = check_onednn_convolution();
    if (check.onednn_checked && !check.onednn_agrees) {
      at::globalContext().setUserEnabledMkldnn(false);
      spdlog::warn(
          "oneDNN's convolution gradient is wrong in this libtorch (3x3 convolution, input {}: "
          "off by {:.3g} of its largest entry against ATen's own kernel); oneDNN is turned off "
          "for this process, so CPU convolutions are right but slower",
          check.probe, check.max_difference);
    }
  });
  return check;
}

}  // namespace flatface
