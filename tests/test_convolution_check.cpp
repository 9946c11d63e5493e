// The runtime's check of oneDNN's convolution gradient (kernels/convolution_check.hpp): its verdict
// against a direct sum, and the gradient a narrow convolution gets once the runtime has decided
// which kernels to trust (on Debian 13's oneDNN 3.7 the unchecked gradient is off by O(1)).
#include <ATen/Context.h>
#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <vector>

#include "catch_compat.hpp"
#include "kernels/convolution_check.hpp"

namespace {

// dL/dx of y = conv2d(x, w, stride 1, padding 1) for dL/dy = g, summed in double:
// dx[n,c,i,j] = Σ_{o,a,b} g[n,o,i+1-a,j+1-b] w[o,c,a,b] over the rows and columns inside g.
at::Tensor direct_input_gradient(const at::Tensor& x, const at::Tensor& w, const at::Tensor& g) {
  const auto gd = g.to(at::kDouble).contiguous();
  const auto wd = w.to(at::kDouble).contiguous();
  auto gg = gd.accessor<double, 4>();
  auto ww = wd.accessor<double, 4>();
  at::Tensor dx = at::zeros(x.sizes(), at::kDouble);
  auto d = dx.accessor<double, 4>();
  const auto N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), O = w.size(0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < H; ++i)
        for (int64_t j = 0; j < W; ++j) {
          double sum = 0;
          for (int64_t o = 0; o < O; ++o)
            for (int64_t a = 0; a < 3; ++a)
              for (int64_t b = 0; b < 3; ++b) {
                const int64_t p = i + 1 - a, q = j + 1 - b;
                if (p >= 0 && p < H && q >= 0 && q < W) sum += gg[n][o][p][q] * ww[o][c][a][b];
              }
          d[n][c][i][j] = sum;
        }
  return dx;
}

at::Tensor autograd_input_gradient(const at::Tensor& x, const at::Tensor& w, const at::Tensor& g) {
  at::AutoGradMode grad_mode(true);
  at::Tensor leaf = x.clone().set_requires_grad(true);
  const std::vector<int64_t> stride{1, 1}, padding{1, 1};
  at::conv2d(leaf, w, {}, stride, padding).backward(g);
  return leaf.grad().to(at::kDouble);
}

double relative_error(const at::Tensor& got, const at::Tensor& want) {
  const double diff = (got - want).abs().max().item<double>();
  return std::isfinite(diff) ? diff / want.abs().max().item<double>() : INFINITY;
}

}  // namespace

CATCH_TEST_CASE("the check's verdict on oneDNN is the direct sum's, and it leaves oneDNN as it was") {
  auto& context = at::globalContext();
  const bool before = context.userEnabledMkldnn();
  const flatface::ConvolutionCheck check = flatface::check_onednn_convolution();
  CATCH_CHECK(context.userEnabledMkldnn() == before);
  if (!check.onednn_checked) {
    CATCH_CHECK_FALSE(at::hasMKLDNN());
    return;
  }
  // oneDNN on, as the check judged it, against the sum written out (random inputs, not the
  // check's own).
  at::manual_seed(7);
  bool all_right = true;
  for (int64_t channels : {4, 24}) {
    const at::Tensor x = at::randn({2, channels, 8, 8});
    const at::Tensor w = at::randn({channels, channels, 3, 3}) * 0.2;
    const at::Tensor g = at::randn({2, channels, 8, 8});
    context.setUserEnabledMkldnn(true);
    const double error = relative_error(autograd_input_gradient(x, w, g),
                                        direct_input_gradient(x, w, g));
    context.setUserEnabledMkldnn(before);
    CATCH_INFO("channels " << channels << ": oneDNN against the direct sum " << error);
    all_right = all_right && error < 1e-4;
  }
  CATCH_CHECK(check.onednn_agrees == all_right);
  CATCH_CHECK(check.probe == "[2, 4, 8, 8], [2, 24, 8, 8]");
}

CATCH_TEST_CASE("after the runtime's check, a narrow convolution's input gradient is the direct sum") {
  flatface::ensure_trusted_cpu_convolutions();
  // The tiny IResNets' layers: 4 and 8 channels, batch 16 (where Debian 13's oneDNN fails always).
  at::manual_seed(11);
  for (auto shape : std::vector<std::vector<int64_t>>{{16, 4, 28, 28}, {16, 8, 7, 7}}) {
    const at::Tensor x = at::randn(shape);
    const at::Tensor w = at::randn({shape[1], shape[1], 3, 3}) * 0.2;
    const at::Tensor g = at::randn(shape);
    for (int repeat = 0; repeat < 3; ++repeat) {
      const double error =
          relative_error(autograd_input_gradient(x, w, g), direct_input_gradient(x, w, g));
      CATCH_INFO("input [" << shape[0] << ", " << shape[1] << ", " << shape[2] << ", " << shape[3]
                     << "], try " << repeat << ": relative error " << error);
      CATCH_CHECK(error < 1e-5);
    }
  }
}
