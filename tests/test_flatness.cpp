// The flatness measures (runtime/src/flatness/) where the answer is known in closed form, through
// the same LossFunction code path a trained model takes, and on IResNet-small against finite
// differences.
#include <ATen/Context.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/diag.h>
#include <ATen/ops/linalg_qr.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>

#include <cmath>
#include <memory>
#include <vector>

#include "experiment/analysis_settings.hpp"
#include "backbone_test_support.hpp"
#include "catch_compat.hpp"
#include "experiment/experiment.hpp"
#include "flatness/hessian.hpp"
#include "flatness/landscape.hpp"
#include "flatness/model_loss.hpp"
#include "flatness/sharpness.hpp"
#include "step_test_support.hpp"

namespace {

using catch_compat::Approx;
using flatface::flatness::LossFunction;
using flatface::flatness::ParamVector;
namespace fl = flatface::flatness;

// L(w) = ½ wᵀAw with w = [vec(W) (2x3), b (4)] in float64: d = 10 parameters in two tensors, as a
// model's would be.
struct Quadratic {
  at::Tensor a;  // [10,10], symmetric
  LossFunction f;
  explicit Quadratic(at::Tensor matrix, double w_scale = 0.0) : a(std::move(matrix)) {
    auto opts = at::TensorOptions().dtype(at::kDouble);
    at::Tensor w = at::randn({2, 3}, opts) * w_scale, b = at::randn({4}, opts) * w_scale;
    f.parameters = {w.requires_grad_(), b.requires_grad_()};
    f.parts = 1;
    f.loss = [this](std::size_t) {
      at::Tensor flat = at::cat({f.parameters[0].reshape({-1}), f.parameters[1]});
      return 0.5 * flat.dot(a.mv(flat));
    };
  }
};

// A = QΛQᵀ with Q orthogonal (QR of a seeded Gaussian matrix) and Λ given: the eigenvalues of A
// are Λ by construction.
at::Tensor with_eigenvalues(const std::vector<double>& lambda, std::uint64_t seed) {
  at::Generator g = fl::make_generator(seed);
  auto opts = at::TensorOptions().dtype(at::kDouble);
  const auto n = static_cast<std::int64_t>(lambda.size());
  at::Tensor q = std::get<0>(at::linalg_qr(at::randn({n, n}, g, opts)));
  at::Tensor l = at::tensor(lambda, opts);
  return q.mm(at::diag(l)).mm(q.t());
}

const std::vector<double> kLambda{10.0, 4.0, 2.0, 1.0, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05};

double sum(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}

}  // namespace

CATCH_TEST_CASE("Power iteration finds the largest eigenvalue and the top 3 of a quadratic") {
  Quadratic q(with_eigenvalues(kLambda, 7), 1.0);
  fl::EigenOptions o;
  o.top_k = 3;
  o.tolerance = 1e-10;  // tight, so that the estimate itself is checked to 1e-4
  o.max_iterations = 1000;
  auto r = fl::top_eigenvalues(q.f, o);
  CATCH_REQUIRE(r.eigenvalues.size() == 3);
  CATCH_CHECK(std::abs(r.eigenvalues[0] - 10.0) < 1e-4);
  CATCH_CHECK(std::abs(r.eigenvalues[1] - 4.0) < 1e-4);
  CATCH_CHECK(std::abs(r.eigenvalues[2] - 2.0) < 1e-4);
  // The eigenvectors are orthonormal.
  CATCH_CHECK(fl::dot(r.eigenvectors[0], r.eigenvectors[1]) == Approx(0).margin(1e-6));
  CATCH_CHECK(fl::norm(r.eigenvectors[2]) == Approx(1).epsilon(1e-12));
}

CATCH_TEST_CASE("With PyHessian's defaults the largest eigenvalue is within its tolerance") {
  Quadratic q(with_eigenvalues(kLambda, 8), 1.0);
  auto r = fl::top_eigenvalues(q.f, fl::EigenOptions{});
  CATCH_CHECK(r.iterations[0] < 100);
  // The relative change between iterates is < 1e-3 at the end; the error is of that order.
  CATCH_CHECK(std::abs(r.eigenvalues[0] - 10.0) / 10.0 < 1e-3);
}

CATCH_TEST_CASE("Hutchinson's trace of a dense quadratic lies within 3 standard errors of tr A") {
  Quadratic q(with_eigenvalues(kLambda, 9));
  fl::TraceOptions o;
  o.tolerance = 0;  // a fixed number of samples
  o.max_samples = 200;
  auto r = fl::hutchinson_trace(q.f, o);
  CATCH_CHECK(r.samples == 200);
  CATCH_CHECK(r.standard_error > 0);  // A is not diagonal: vᵀAv varies
  CATCH_CHECK(std::abs(r.mean - sum(kLambda)) < 3 * r.standard_error);
}

CATCH_TEST_CASE("Hutchinson's trace of a diagonal quadratic is exact") {
  // vᵀAv = Σ A_ii v_i² = tr A for every Rademacher v.
  auto opts = at::TensorOptions().dtype(at::kDouble);
  Quadratic q(at::diag(at::tensor(kLambda, opts)));
  auto r = fl::hutchinson_trace(q.f, fl::TraceOptions{});
  CATCH_CHECK(std::abs(r.mean - sum(kLambda)) < 1e-4);
  CATCH_CHECK(r.standard_error == Approx(0).margin(1e-9));
}

CATCH_TEST_CASE("Worst-case sharpness of a quadratic at its minimum is rho^2 lambda_max / 2") {
  Quadratic q(with_eigenvalues(kLambda, 10));  // w = 0: ∇L = 0, a seeded random start
  fl::WorstCaseOptions o;
  o.rho = 0.3;
  o.steps = 60;
  auto r = fl::worst_case_sharpness(q.f, o);
  CATCH_CHECK(r.loss == Approx(0).margin(1e-15));
  CATCH_CHECK(std::abs(r.sharpness - 0.3 * 0.3 * 10.0 / 2) < 1e-4);
  // The weights are back where they were.
  CATCH_CHECK(fl::norm(q.f.parameters) == 0);
}

CATCH_TEST_CASE("Worst-case sharpness never exceeds the bound of the ball, from any point") {
  // L(w+δ) − L(w) = ∇Lᵀδ + ½δᵀAδ ≤ ρ‖∇L‖ + ρ²λ_max/2.
  Quadratic q(with_eigenvalues(kLambda, 11), 1.0);
  fl::WorstCaseOptions o;
  o.rho = 0.1;
  auto r = fl::worst_case_sharpness(q.f, o);
  const double bound = 0.1 * fl::norm(fl::gradient(q.f)) + 0.01 * 10.0 / 2;
  CATCH_CHECK(r.sharpness > 0);
  CATCH_CHECK(r.sharpness <= bound + 1e-12);
}

CATCH_TEST_CASE("Adaptive sharpness equals plain sharpness when every parameter is 1-d") {
  // T is 1 on 1-d tensors (biases, BN), so the two balls are the same.
  auto opts = at::TensorOptions().dtype(at::kDouble);
  at::Tensor a = with_eigenvalues({3.0, 1.0, 0.5, 0.25}, 12);
  LossFunction f;
  f.parameters = {at::randn({4}, opts).requires_grad_()};
  f.loss = [&](std::size_t) { return 0.5 * f.parameters[0].dot(a.mv(f.parameters[0])); };
  fl::WorstCaseOptions o;
  o.rho = 0.2;
  const double plain = fl::worst_case_sharpness(f, o).sharpness;
  o.adaptive = true;
  CATCH_CHECK(fl::worst_case_sharpness(f, o).sharpness == Approx(plain).epsilon(1e-12));
}

CATCH_TEST_CASE("Average-case sharpness of a quadratic is rho^2 tr(A) / (2d)") {
  // E[½δᵀAδ] = ½σ² tr A with σ = ρ/√d, at w = 0.
  Quadratic q(with_eigenvalues(kLambda, 13));
  fl::AverageCaseOptions o;
  o.rho = 0.5;
  o.samples = 400;
  auto r = fl::average_case_sharpness(q.f, o);
  const double expected = 0.25 * sum(kLambda) / (2 * 10);
  CATCH_CHECK(r.standard_error > 0);
  CATCH_CHECK(std::abs(r.sharpness - expected) < 3 * r.standard_error);
}

CATCH_TEST_CASE("Filter normalisation rescales each filter to the weight's filter norm") {
  auto opts = at::TensorOptions().dtype(at::kDouble);
  // Filter 0 of w has norm 5 (3, 4), filter 1 norm 13 (5, 12); the bias is 1-d.
  at::Tensor w = at::tensor({3.0, 4.0, 5.0, 12.0}, opts).view({2, 1, 2});
  at::Tensor bias = at::tensor({1.0, 2.0}, opts);
  at::Generator g1 = fl::make_generator(3), g2 = fl::make_generator(3);
  ParamVector d = fl::filter_normalized_direction({w, bias}, g1);
  ParamVector raw = fl::gaussian_like({w, bias}, g2);  // the same draw, before rescaling
  at::Tensor r0 = raw[0][0].reshape({-1}), r1 = raw[0][1].reshape({-1});
  const double n0 = std::hypot(r0[0].item<double>(), r0[1].item<double>());
  const double n1 = std::hypot(r1[0].item<double>(), r1[1].item<double>());
  CATCH_CHECK(d[0][0][0][0].item<double>() == Approx(r0[0].item<double>() * 5 / n0));
  CATCH_CHECK(d[0][0][0][1].item<double>() == Approx(r0[1].item<double>() * 5 / n0));
  CATCH_CHECK(d[0][1][0][0].item<double>() == Approx(r1[0].item<double>() * 13 / n1));
  CATCH_CHECK(d[0][1][0][1].item<double>() == Approx(r1[1].item<double>() * 13 / n1));
  CATCH_CHECK(d[1].abs().sum().item<double>() == 0);  // biases and BN get no direction
}

CATCH_TEST_CASE("The landscape at alpha = 0 is the loss at w, and follows the quadratic") {
  Quadratic q(with_eigenvalues(kLambda, 14), 1.0);
  at::Generator g = fl::make_generator(1);
  ParamVector d = fl::gaussian_like(q.f.parameters, g);
  const double l0 = fl::loss_value(q.f);
  auto curve = fl::landscape_1d(q.f, d, {-1.0, 0.0, 0.5});
  CATCH_CHECK(curve[1] == l0);
  // L(w + αd) = L(w) + α ∇Lᵀd + ½α² dᵀAd.
  const double slope = fl::dot(fl::gradient(q.f), d);
  const double curvature = fl::dot(fl::hessian_vector_product(q.f, d), d);
  CATCH_CHECK(curve[0] == Approx(l0 - slope + 0.5 * curvature).epsilon(1e-10));
  CATCH_CHECK(curve[2] == Approx(l0 + 0.5 * slope + 0.125 * curvature).epsilon(1e-10));
  auto plane = fl::landscape_2d(q.f, d, d, {0.0, 1.0}, {0.0});
  CATCH_CHECK(plane[0] == l0);
  CATCH_CHECK(fl::grid(-1, 1, 5) == std::vector<double>{-1, -0.5, 0, 0.5, 1});
}

CATCH_TEST_CASE("Hessian-vector products equal finite differences of gradients on IResNet-small") {
  using namespace flatface::testing;
  at::manual_seed(0);
  auto backbone = make_backbone("iresnet-small", {{"width", 4}, {"embedding", 16}});
  backbone->to(at::kDouble);
  auto head = head_plugin("arcface", 5, 16, {{"s", num(16.0)}, {"m", num(0.5)}});
  auto opts = at::TensorOptions().dtype(at::kDouble);
  std::vector<fl::LabelledBatch> batches{{at::randn({4, 3, 56, 56}, opts),
                                          at::tensor(std::vector<std::int64_t>{0, 1, 2, 3})},
                                         {at::randn({4, 3, 56, 56}, opts),
                                          at::tensor(std::vector<std::int64_t>{4, 0, 1, 2})}};
  for (bool bn_train : {false, true}) {
    const ParamVector before = fl::clone(fl::trainable_parameters(*backbone, *head));
    {
      fl::ModelLoss loss(backbone, head, batches, bn_train);
      const LossFunction& f = loss.function();
      at::Generator g = fl::make_generator(5);
      ParamVector v = fl::normalized(fl::gaussian_like(f.parameters, g));
      const ParamVector hv = fl::hessian_vector_product(f, v);
      const double h = 1e-6;
      const ParamVector fd = fl::scaled(
          fl::add_scaled(fl::gradient_at_offset(f, fl::scaled(v, h)), -1.0,
                         fl::gradient_at_offset(f, fl::scaled(v, -h))),
          1.0 / (2 * h));
      const double error = fl::norm(fl::add_scaled(hv, -1.0, fd));
      CATCH_CHECK(fl::norm(hv) > 0);
      CATCH_CHECK(error < 1e-3 * fl::norm(hv));
    }
    // The measures put every weight back exactly.
    const ParamVector after = fl::trainable_parameters(*backbone, *head);
    for (std::size_t i = 0; i < after.size(); ++i) CATCH_CHECK(after[i].equal(before[i]));
  }
}

CATCH_TEST_CASE("ModelLoss restores BN statistics and modes after a train-mode analysis") {
  using namespace flatface::testing;
  at::manual_seed(1);
  auto backbone = make_backbone("iresnet-small", {{"width", 4}, {"embedding", 16}});
  auto head = head_plugin("arcface", 3, 16);
  head->to(at::kFloat);
  std::vector<at::Tensor> buffers;
  for (const auto& b : backbone->buffers()) buffers.push_back(b.clone());
  backbone->eval();
  {
    fl::ModelLoss loss(backbone, head,
                       {{at::randn({4, 3, 56, 56}),
                         at::tensor(std::vector<std::int64_t>{0, 1, 2, 0})}},
                       /*batch_norm_train=*/true);
    CATCH_CHECK(backbone->is_training());
    fl::loss_value(loss.function());  // a train-mode pass moves the running statistics
  }
  CATCH_CHECK_FALSE(backbone->is_training());
  std::size_t i = 0;
  for (const auto& b : backbone->buffers()) CATCH_CHECK(b.equal(buffers[i++]));
}

CATCH_TEST_CASE("Analysis settings reject an unknown key, naming it") {
  try {
    flatface::parse_analysis_settings(
        flatface::parse_options_table("{ top_k = 2, batchez = 3 }", "--settings"));
    CATCH_FAIL("no error");
  } catch (const flatface::ConfigError& e) {
    CATCH_CHECK_THAT(std::string(e.what()), catch_compat::Contains("batchez"));
  }
  auto s = flatface::parse_analysis_settings(
      flatface::parse_options_table("{ top_k = 2, rho = 0.1 }", "--settings"));
  CATCH_CHECK(s.top_k == 2);
  CATCH_CHECK(*s.rho == 0.1);
  CATCH_CHECK_THROWS_AS(flatface::parse_analysis_settings(
                            flatface::parse_options_table("{ batches = 0 }", "--settings")),
                        flatface::ConfigError);
}
