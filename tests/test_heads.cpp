// Margin heads, loaded through the plugin registry, against hand-derived values and the
// reference implementations' own outputs (shared/vectors).
#include <ATen/ops/cat.h>
#include <ATen/ops/eye.h>

#include <algorithm>
#include <cmath>

#include "catch_compat.hpp"
#include "step_test_support.hpp"

using namespace flatface;
using namespace flatface::testing;
using catch_compat::Approx;

namespace {

// One sample whose cosines to the C classes are exactly `cos` (any values in [-1, 1]):
// x = 3 e0 (unnormalised on purpose) and w_j = c_j e0 + sqrt(1 - c_j^2) e_{j+1}.
struct CosineCase {
  at::Tensor x;  // [1, C+1]
  at::Tensor w;  // [C, C+1]
};
CosineCase cosine_case(const std::vector<double>& cos) {
  auto c = static_cast<std::int64_t>(cos.size());
  at::Tensor w = at::zeros({c, c + 1}, at::kDouble);
  for (std::int64_t j = 0; j < c; ++j) {
    w[j][0] = cos[j];
    w[j][j + 1] = std::sqrt(1 - cos[j] * cos[j]);
  }
  at::Tensor x = at::zeros({1, c + 1}, at::kDouble);
  x[0][0] = 3.0;
  return {x, w};
}

// The head's logits for one sample with the given cosines and label.
at::Tensor logits_for(MarginHead& head, const std::vector<double>& cos, std::int64_t label) {
  auto k = cosine_case(cos);
  set_parameter(head, "weight", k.w);
  return head.logits(k.x, longs({label}))[0];
}

}  // namespace

CATCH_TEST_CASE(
    "every head owns a [C,D] class-weight parameter named weight, drawn from N(0, 0.01)") {
  for (const char* name : {"softmax", "cosface", "arcface", "adaface"}) {
    CATCH_CAPTURE(name);
    auto head = head_plugin(name, 200, 64);
    auto params = head->named_parameters();
    CATCH_REQUIRE(params.size() == 1);
    CATCH_REQUIRE(params.contains("weight"));
    CATCH_CHECK(params["weight"].sizes() == at::IntArrayRef({200, 64}));
    CATCH_CHECK(params["weight"].std().item<double>() == Approx(0.01).epsilon(0.05));
    CATCH_CHECK(std::abs(params["weight"].mean().item<double>()) < 0.001);
  }
}

CATCH_TEST_CASE("cosine() is the plain cosine between embeddings and class weights") {
  auto head = head_plugin("arcface", 3, 4);
  at::Tensor w = doubles({1, 0, 0, 0, 0, 2, 0, 0, 1, 1, 0, 0}, {3, 4});
  set_parameter(*head, "weight", w);
  at::Tensor x = doubles({5, 0, 0, 0, 0, 0, 7, 0}, {2, 4});
  at::Tensor expected = doubles({1, 0, std::sqrt(0.5), 0, 0, 0}, {2, 3});
  CATCH_CHECK(max_abs_diff(head->cosine(x), expected) < 1e-15);
}

CATCH_TEST_CASE("normalised softmax multiplies every cosine by s (eq. 2)") {
  auto head = head_plugin("softmax", 3, 4, {{"s", num(30.0)}});
  at::Tensor out = logits_for(*head, {0.5, -0.2, 0.8}, 2);
  CATCH_CHECK(max_abs_diff(out, doubles({15.0, -6.0, 24.0}, {3})) < 1e-12);
}

CATCH_TEST_CASE("CosFace subtracts m from the target cosine only, then scales by s") {
  auto head = head_plugin("cosface", 3, 4);  // s = 64, m = 0.35
  at::Tensor out = logits_for(*head, {0.5, -0.2, 0.8}, 2);
  // 64 * 0.5, 64 * -0.2, 64 * (0.8 - 0.35)
  CATCH_CHECK(max_abs_diff(out, doubles({32.0, -12.8, 28.8}, {3})) < 1e-12);
}

CATCH_TEST_CASE("ArcFace logits equal insightface's CombinedMarginLoss on the reference vectors") {
  auto ref = load_json(vectors("arcface_forward.json"));
  for (bool straight_through : {false, true}) {
    CATCH_CAPTURE(straight_through);
    auto head = head_plugin("arcface", 5, 6,
                            {{"s", num(ref.at("s").get<double>())},
                             {"m", num(ref.at("m").get<double>())},
                             {"straight_through", flag(straight_through)}});
    for (std::size_t i = 0; i < ref.at("cos").size(); ++i) {
      CATCH_CAPTURE(i);
      at::Tensor out = logits_for(*head, numbers_of(ref.at("cos").at(i)),
                                  ref.at("labels").at(i).get<std::int64_t>());
      at::Tensor expected = doubles(numbers_of(ref.at("logits").at(i)), {5});
      CATCH_CHECK(max_abs_diff(out, expected) < 1e-10);
    }
  }
}

CATCH_TEST_CASE("ArcFace falls back to cos(theta) - m sin(m) where theta + m > pi") {
  auto head = head_plugin("arcface", 2, 3);  // s = 64, m = 0.5
  const double m = 0.5;
  // theta = arccos(-0.95) = 2.825, theta + m = 3.325 > pi.
  at::Tensor out = logits_for(*head, {-0.95, 0.1}, 0);
  CATCH_CHECK(out[0].item<double>() == Approx(64 * (-0.95 - m * std::sin(m))).epsilon(1e-13));
  CATCH_CHECK(out[1].item<double>() == Approx(64 * 0.1).epsilon(1e-13));
  // Just inside theta + m < pi the margin is the angular one.
  const double c = std::cos(M_PI - m) + 0.01;
  at::Tensor inside = logits_for(*head, {c, 0.1}, 0);
  CATCH_CHECK(inside[0].item<double>() == Approx(64 * std::cos(std::acos(c) + m)).epsilon(1e-13));
}

CATCH_TEST_CASE("straight-through ArcFace keeps cos(theta + m) everywhere, as insightface does") {
  auto head = head_plugin("arcface", 2, 3, {{"straight_through", flag(true)}});
  at::Tensor out = logits_for(*head, {-0.95, 0.1}, 0);
  CATCH_CHECK(out[0].item<double>() ==
              Approx(64 * std::cos(std::acos(-0.95) + 0.5)).epsilon(1e-13));
}

CATCH_TEST_CASE("ArcFace's gradient through the target cosine: exact or straight through") {
  // d logit_y / dx compared with s * d cos_y / dx, taken from the normalised-softmax head.
  const double c = 0.3;
  const double m = 0.5;
  auto k = cosine_case({c, -0.4});
  auto grad_target = [&](MarginHead& head) {
    set_parameter(head, "weight", k.w);
    at::Tensor x = k.x.clone().requires_grad_(true);
    head.logits(x, longs({0}))[0][0].backward();
    return x.grad();
  };
  at::Tensor plain = grad_target(*head_plugin("softmax", 2, 3));  // s d cos / dx
  at::Tensor exact = grad_target(*head_plugin("arcface", 2, 3));
  at::Tensor straight =
      grad_target(*head_plugin("arcface", 2, 3, {{"straight_through", flag(true)}}));
  // d cos(theta + m) / d cos theta = cos m + sin m cos theta / sin theta
  const double chain = std::cos(m) + std::sin(m) * c / std::sqrt(1 - c * c);
  CATCH_CHECK(max_abs_diff(exact, chain * plain) < 1e-12);
  CATCH_CHECK(max_abs_diff(straight, plain) < 1e-12);
}

CATCH_TEST_CASE(
    "AdaFace logits and batch statistics equal AdaFace's head.py on the reference vectors") {
  auto ref = load_json(vectors("adaface_forward.json"));
  at::Tensor kernel = matrix_of(ref.at("kernel_DxC"));  // [D, C]: columns are class weights
  auto head = head_plugin("adaface", kernel.size(1), kernel.size(0),
                          {{"s", num(ref.at("s").get<double>())},
                           {"m", num(ref.at("m").get<double>())},
                           {"h", num(ref.at("h").get<double>())},
                           {"t_alpha", num(ref.at("t_alpha").get<double>())}});
  set_parameter(*head, "weight", kernel.t());
  auto buffers = head->named_buffers();
  CATCH_REQUIRE(buffers.contains("batch_mean"));
  CATCH_REQUIRE(buffers.contains("batch_std"));
  CATCH_CHECK(buffers["batch_mean"].item<double>() == ref.at("batch_mean_before").get<double>());
  CATCH_CHECK(buffers["batch_std"].item<double>() == ref.at("batch_std_before").get<double>());

  at::Tensor out =
      head->logits(matrix_of(ref.at("embeddings_unnormalised")), labels_of(ref.at("labels")));
  CATCH_CHECK(max_abs_diff(out, matrix_of(ref.at("logits"))) < 1e-10);
  CATCH_CHECK(buffers["batch_mean"].item<double>() ==
              Approx(ref.at("batch_mean_after").get<double>()).epsilon(1e-13));
  CATCH_CHECK(buffers["batch_std"].item<double>() ==
              Approx(ref.at("batch_std_after").get<double>()).epsilon(1e-13));
}

CATCH_TEST_CASE("AdaFace leaves its statistics alone while statistics updates are off") {
  auto head = head_plugin("adaface", 3, 4);
  at::Tensor x = doubles({1, 2, 3, 4, -1, 0, 2, 5}, {2, 4});
  head->set_update_statistics(false);
  head->logits(x, longs({0, 2}));
  auto buffers = head->named_buffers();
  CATCH_CHECK(buffers["batch_mean"].item<double>() == 20.0);
  CATCH_CHECK(buffers["batch_std"].item<double>() == 100.0);

  head->set_update_statistics(true);
  head->logits(x, longs({0, 2}));
  // mean of the norms sqrt(30), sqrt(30); their unbiased std is 0.
  CATCH_CHECK(buffers["batch_mean"].item<double>() == Approx(0.99 * 20 + 0.01 * std::sqrt(30.0)));
  CATCH_CHECK(buffers["batch_std"].item<double>() == Approx(0.99 * 100));
}

CATCH_TEST_CASE(
    "AdaFace's batch statistics are those of the global batch of the ranks it is given") {
  // This rank's rows have norms 5 and 13, the partner's 1 and 7 (its sums: count 2, Σn = 8,
  // Σn² = 50). The global batch: mean 6.5, squared deviations 2.25 + 42.25 + 30.25 + 0.25 = 75,
  // unbiased std sqrt(75 / 3) = 5 (this rank's alone: mean 9, std sqrt(32)).
  TwoRanks ranks(doubles({2, 8, 50}, {3}));
  auto head = step_plugins()
                  .get(PluginKind::head, "adaface")
                  .entry.head(HeadArgs{options_of("head 'adaface'"), 4, 3, &ranks});
  head->to(at::kDouble);
  head->logits(doubles({3, 4, 0, 0, 0, 5, 12, 0}, {2, 4}), longs({0, 2}));
  auto buffers = head->named_buffers();
  CATCH_CHECK(buffers["batch_mean"].item<double>() == Approx(0.99 * 20 + 0.01 * 6.5));
  CATCH_CHECK(buffers["batch_std"].item<double>() == Approx(0.99 * 100 + 0.01 * 5));
}

CATCH_TEST_CASE("AdaFace's margin depends on the feature norm relative to the batch statistics") {
  // With mu = 20, sigma = 100, h = 0.333 and statistics frozen: norm n gives
  // s_hat = clip(h (n - 20) / 100.001, -1, 1), target = cos(theta - m s_hat) - m (1 + s_hat).
  auto head = head_plugin("adaface", 2, 3);
  head->set_update_statistics(false);
  for (double n : {5.0, 20.0, 90.0}) {
    CATCH_CAPTURE(n);
    auto k = cosine_case({0.6, -0.3});
    set_parameter(*head, "weight", k.w);
    at::Tensor x = k.x / 3.0 * n;
    at::Tensor out = head->logits(x, longs({0}))[0];
    double s_hat = std::clamp(0.333 * (n - 20) / (100 + 1e-3), -1.0, 1.0);
    double target = std::cos(std::acos(0.6) - 0.4 * s_hat) - 0.4 * (1 + s_hat);
    CATCH_CHECK(out[0].item<double>() == Approx(64 * target).epsilon(1e-12));
    CATCH_CHECK(out[1].item<double>() == Approx(64 * -0.3).epsilon(1e-12));
  }
}

CATCH_TEST_CASE("a head rejects options it does not know and values out of range") {
  auto make = [](const std::string& name, const std::map<std::string, Options::Value>& values) {
    return flatface::make_head(step_plugins(), PluginRef{name, options_of("head", values)}, 4, 3);
  };
  CATCH_CHECK_THROWS_AS(make("arcface", {{"mm", num(0.5)}}), ConfigError);
  CATCH_CHECK_THROWS_AS(make("arcface", {{"m", num(4.0)}}), ConfigError);
  CATCH_CHECK_THROWS_AS(make("cosface", {{"s", num(-1.0)}}), ConfigError);
  CATCH_CHECK_THROWS_AS(make("adaface", {{"t_alpha", num(2.0)}}), ConfigError);
  CATCH_CHECK_NOTHROW(make("adaface", {{"m", num(0.4)}, {"h", num(0.333)}}));
}
