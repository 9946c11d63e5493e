// The CPU kernels the runtime trusts. Libtorch hands convolutions on the CPU to oneDNN (mkldnn)
// where it can; Debian 13's oneDNN 3.7 (with its libtorch 2.6) returns a wrong input gradient for
// 3x3 convolutions with 4 to 24 channels and a batch of two or more: off by O(1), sometimes NaN,
// different on every call (it reads memory it never wrote). Narrow backbones (the tests' tiny
// IResNets) train on garbage there, while the forward pass and layers of 32 channels or more stay
// right. Before its first gradient (a training step, a flatness measure), the runtime computes
// one such gradient with oneDNN and with ATen's own kernels; if they disagree it turns oneDNN off
// for the process and says so. Commands that run forward passes only (validate, eval, embed)
// keep oneDNN: its forward pass is right. Nothing here draws from a random generator, so a run's
// numbers do not depend on whether the check ran. No other folder of the runtime is used.
#pragma once

#include <string>

namespace flatface {

struct ConvolutionCheck {
  bool onednn_checked = false;  // false where libtorch has no oneDNN: nothing to compare
  bool onednn_agrees = true;
  double max_difference = 0;  // |oneDNN - ATen| of the input gradient, over its largest entry
  std::string probe;          // the shapes compared, for messages
};

// Compare oneDNN's input gradient with ATen's on the shapes that fail; leaves oneDNN as it was.
ConvolutionCheck check_onednn_convolution();

// Once per process: run the check and, where oneDNN is wrong, turn it off with a warning.
// Returns the check's result (the same object on every call).
const ConvolutionCheck& ensure_trusted_cpu_convolutions();

}  // namespace flatface
