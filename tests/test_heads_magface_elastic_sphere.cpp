// MagFace, ElasticFace and SphereFace, loaded through the plugin registry, and the SDK hooks they
// need (MarginHead::begin_step, MarginHead::regularizer, HeadArgs::seed): against a second,
// naive implementation of each paper's equations written here (loops over doubles, gradients by
// central differences), against the numbers the authors' own code printed
// (tests/reference/*_reference.py), and in training steps of none / sam / aace that resume exactly
// from a checkpoint.
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/ones.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "catch_compat.hpp"
#include "json_file.hpp"
#include "flatface/sample_order.hpp"
#include "step_test_support.hpp"
#include "test_support.hpp"
#include "training/checkpoint.hpp"
#include "training/optimizer.hpp"
#include "training/train_step.hpp"

using namespace flatface;
using namespace flatface::testing;
using catch_compat::Approx;

namespace {

using Matrix = std::vector<std::vector<double>>;
using Values = std::map<std::string, Options::Value>;

Json reference(const std::string& file) {
  return load_json(std::string(FLATFACE_TEST_SOURCE_DIR) + "/reference/data/" + file);
}

// A head built through its plugin entry with the run's seed, in float64.
std::shared_ptr<MarginHead> head_with_seed(const std::string& name, std::int64_t classes,
                                           std::int64_t dim, const Values& values,
                                           std::uint64_t seed, Collectives& ranks = one_process()) {
  auto head = step_plugins()
                  .get(PluginKind::head, name)
                  .entry.head(HeadArgs{options_of("head '" + name + "'", values), dim, classes,
                                       &ranks, seed});
  head->to(at::kDouble);
  return head;
}

Matrix matrix(const at::Tensor& t) {
  at::Tensor c = t.to(at::kDouble).contiguous();
  Matrix m(static_cast<std::size_t>(c.size(0)));
  for (std::int64_t i = 0; i < c.size(0); ++i)
    for (std::int64_t j = 0; j < c.size(1); ++j) m[i].push_back(c[i][j].item<double>());
  return m;
}
at::Tensor tensor(const Matrix& m) {
  std::vector<double> flat;
  for (const auto& row : m) flat.insert(flat.end(), row.begin(), row.end());
  return doubles(flat,
                 {static_cast<std::int64_t>(m.size()), static_cast<std::int64_t>(m[0].size())});
}

// ---- The naive side: a batch, its logits and extra per-sample terms, the loss, the gradient.
struct Problem {
  Matrix x, w;
  std::vector<std::int64_t> y;
};
struct Scored {
  Matrix logits;
  std::vector<double> extra;  // the head's own per-sample term (MagFace), else zeros
};
using NaiveHead = std::function<Scored(const Problem&)>;

double norm(const std::vector<double>& v) {
  return std::sqrt(std::inner_product(v.begin(), v.end(), v.begin(), 0.0));
}
double cosine(const std::vector<double>& a, const std::vector<double>& b) {
  return std::inner_product(a.begin(), a.end(), b.begin(), 0.0) / (norm(a) * norm(b));
}
// mean_i (log Σ_j e^{z_ij} − z_{i,y_i} + extra_i)
double naive_loss(const Scored& s, const std::vector<std::int64_t>& y) {
  double sum = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    double top = *std::max_element(s.logits[i].begin(), s.logits[i].end()), e = 0;
    for (double z : s.logits[i]) e += std::exp(z - top);
    sum += top + std::log(e) - s.logits[i][y[i]] + s.extra[i];
  }
  return sum / static_cast<double>(y.size());
}
// ∂L/∂x and ∂L/∂w by central differences of the naive loss.
std::pair<Matrix, Matrix> naive_gradient(const NaiveHead& head, const Problem& p, double h = 1e-6) {
  auto derivative = [&](Matrix Problem::*which) {
    Matrix g = p.*which;
    for (std::size_t i = 0; i < g.size(); ++i)
      for (std::size_t j = 0; j < g[i].size(); ++j) {
        Problem plus = p, minus = p;
        (plus.*which)[i][j] += h;
        (minus.*which)[i][j] -= h;
        g[i][j] = (naive_loss(head(plus), p.y) - naive_loss(head(minus), p.y)) / (2 * h);
      }
    return g;
  };
  return {derivative(&Problem::x), derivative(&Problem::w)};
}

// ---- The plugin side, through autograd: L = CE(logits) + mean(regularizer).
struct Autograd {
  at::Tensor logits;
  double loss;
  at::Tensor grad_x, grad_w;
};
Autograd autograd(MarginHead& head, const at::Tensor& x, const at::Tensor& w, const at::Tensor& y) {
  set_parameter(head, "weight", w);
  at::Tensor weight = head.named_parameters()["weight"];
  weight.mutable_grad() = at::Tensor();
  at::Tensor xi = x.clone().requires_grad_(true);
  at::Tensor logits = head.logits(xi, y);
  at::Tensor loss = at::cross_entropy_loss(logits, y);
  at::Tensor r = head.regularizer(xi, y);
  if (r.defined()) loss = loss + r.mean();
  loss.backward();
  return {logits.detach(), loss.item<double>(), xi.grad(), weight.grad().clone()};
}

// The plugin against the naive head on one problem: logits, loss and both gradients.
void check_against_naive(MarginHead& head, const NaiveHead& naive, const Problem& p,
                         double gradient_tolerance = 1e-6) {
  at::Tensor y = longs(p.y);
  Autograd a = autograd(head, tensor(p.x), tensor(p.w), y);
  Scored s = naive(p);
  CATCH_CHECK(max_abs_diff(a.logits, tensor(s.logits)) < 1e-10);
  CATCH_CHECK(a.loss == Approx(naive_loss(s, p.y)).epsilon(1e-12));
  auto [gx, gw] = naive_gradient(naive, p);
  CATCH_CHECK(max_abs_diff(a.grad_x, tensor(gx)) < gradient_tolerance);
  CATCH_CHECK(max_abs_diff(a.grad_w, tensor(gw)) < gradient_tolerance);
}

// The plugin against one case of the authors' numbers.
void check_against_reference(MarginHead& head, const Json& ref,
                             const Json& c, std::int64_t rows = -1) {
  at::Tensor x = matrix_of(ref["x"]), y = labels_of(ref["labels"]);
  if (rows > 0) {
    x = x.narrow(0, 0, rows);
    y = y.narrow(0, 0, rows);
  }
  Autograd a = autograd(head, x, matrix_of(ref["weight"]), y);
  CATCH_CHECK(max_abs_diff(a.logits, matrix_of(c["logits"])) < 1e-9);
  CATCH_CHECK(a.loss == Approx(c["loss"].get<double>()).epsilon(1e-12));
  CATCH_CHECK(max_abs_diff(a.grad_x, matrix_of(c["grad_x"])) < 1e-9);
  CATCH_CHECK(max_abs_diff(a.grad_w, matrix_of(c["grad_weight"])) < 1e-9);
}

Problem problem_of(const Json& ref) {
  Problem p{matrix(matrix_of(ref["x"])), matrix(matrix_of(ref["weight"])), {}};
  for (double v : numbers_of(ref["labels"])) p.y.push_back(static_cast<std::int64_t>(v));
  return p;
}

// ---- MagFace, from the paper's equations.
struct MagParams {
  double s = 64, l_a = 10, u_a = 110, l_m = 0.45, u_m = 0.8, lambda_g = 35;
  bool easy = true;
};
NaiveHead naive_magface(MagParams q) {
  return [q](const Problem& p) {
    Scored out;
    for (std::size_t i = 0; i < p.x.size(); ++i) {
      const double a = std::clamp(norm(p.x[i]), q.l_a, q.u_a);
      const double m = (q.u_m - q.l_m) / (q.u_a - q.l_a) * (a - q.l_a) + q.l_m;
      std::vector<double> row;
      for (std::size_t j = 0; j < p.w.size(); ++j) {
        const double c = cosine(p.x[i], p.w[j]);
        double t = c;
        if (static_cast<std::int64_t>(j) == p.y[i]) {
          if (q.easy)
            t = c > 0 ? std::cos(std::acos(c) + m) : c;
          else
            t = c > std::cos(M_PI - m) ? std::cos(std::acos(c) + m) : c - m * std::sin(m);
        }
        row.push_back(q.s * t);
      }
      out.logits.push_back(row);
      out.extra.push_back(q.lambda_g * (a / (q.u_a * q.u_a) + 1 / a));
    }
    return out;
  };
}

// ---- ElasticFace: the draw, then the paper's equations.
double elastic_normal(std::uint64_t seed, std::int64_t step, std::int64_t row) {
  SplitMix64 rng(hash_words(seed ^ 0x656c617374696346ULL, static_cast<std::uint64_t>(step),
                            static_cast<std::uint64_t>(row)));
  const double u1 = static_cast<double>((rng.next() >> 11) + 1) * 0x1.0p-53;
  const double u2 = static_cast<double>(rng.next() >> 11) * 0x1.0p-53;
  return std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
}
NaiveHead naive_elastic(bool arc, double s, std::vector<double> margins) {
  return [=](const Problem& p) {
    Scored out;
    for (std::size_t i = 0; i < p.x.size(); ++i) {
      std::vector<double> row;
      for (std::size_t j = 0; j < p.w.size(); ++j) {
        const double c = cosine(p.x[i], p.w[j]);
        const bool target = static_cast<std::int64_t>(j) == p.y[i];
        row.push_back(s * (!target ? c
                           : arc   ? std::cos(std::acos(c) + margins[i])
                                   : c - margins[i]));
      }
      out.logits.push_back(row);
      out.extra.push_back(0);
    }
    return out;
  };
}
// ElasticFace+: the k-th largest target cosine takes the k-th smallest margin.
std::vector<double> paired_by_rank(const std::vector<double>& margins,
                                   const std::vector<double>& target_cos) {
  std::vector<std::size_t> by_cos(margins.size());
  std::iota(by_cos.begin(), by_cos.end(), 0);
  std::sort(by_cos.begin(), by_cos.end(),
            [&](std::size_t a, std::size_t b) { return target_cos[a] > target_cos[b]; });
  std::vector<double> sorted = margins;
  std::sort(sorted.begin(), sorted.end());
  std::vector<double> out(margins.size());
  for (std::size_t k = 0; k < by_cos.size(); ++k) out[by_cos[k]] = sorted[k];
  return out;
}

// ---- SphereFace, from the paper's equations.
double sphere_lambda(std::int64_t step, double base, double gamma, double power, double lmin) {
  return std::max(lmin, base * std::pow(1 + gamma * static_cast<double>(step + 1), -power));
}
double psi(double theta, int m) {
  const double k = std::floor(m * theta / M_PI);
  return std::pow(-1.0, k) * std::cos(m * theta) - 2 * k;
}
NaiveHead naive_sphere(int m, double lambda) {
  return [=](const Problem& p) {
    Scored out;
    for (std::size_t i = 0; i < p.x.size(); ++i) {
      const double n = norm(p.x[i]);
      std::vector<double> row;
      for (std::size_t j = 0; j < p.w.size(); ++j) {
        const double c = cosine(p.x[i], p.w[j]);
        const bool target = static_cast<std::int64_t>(j) == p.y[i];
        row.push_back(n * (target ? (lambda * c + psi(std::acos(c), m)) / (1 + lambda) : c));
      }
      out.logits.push_back(row);
      out.extra.push_back(0);
    }
    return out;
  };
}

HeadStep at_step(std::int64_t step) {
  HeadStep s;
  s.step = step;
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------- MagFace

CATCH_TEST_CASE("MagFace equals the authors' MagLinear and MagLoss: logits, loss and gradients") {
  auto ref = reference("magface.json");
  for (const auto& c : ref["cases"]) {
    const bool easy = c["easy_margin"].get<bool>();
    CATCH_CAPTURE(easy);
    // The authors' settings are the defaults (easy margin included): no options for that case.
    auto head =
        head_plugin("magface", 5, 4, easy ? Values{} : Values{{"easy_margin", flag(false)}});
    check_against_reference(*head, ref, c);
  }
}

CATCH_TEST_CASE(
    "MagFace follows its equations for a below l_a, inside and above u_a, and for theta + m > pi") {
  auto ref = reference("magface.json");
  Problem p = problem_of(ref);
  // The batch holds what the test is about: magnitudes 5 < l_a and 150 > u_a, and a target with
  // θ + m(a) > π (cos θ below cos(π − m)).
  CATCH_REQUIRE(norm(p.x[0]) < 10);
  CATCH_REQUIRE(norm(p.x[4]) > 110);
  CATCH_REQUIRE(cosine(p.x[3], p.w[3]) < std::cos(M_PI - 0.8));
  for (bool easy : {true, false}) {
    CATCH_CAPTURE(easy);
    MagParams q;
    q.easy = easy;
    auto head = head_plugin("magface", 5, 4, {{"easy_margin", flag(easy)}});
    check_against_naive(*head, naive_magface(q), p);
  }
  // Other settings: a narrower magnitude range, no regulariser weight, another scale.
  MagParams q{30, 20, 80, 0.3, 0.6, 10, false};
  auto head = head_plugin("magface", 5, 4,
                          {{"s", num(30)},
                           {"l_a", num(20)},
                           {"u_a", num(80)},
                           {"l_m", num(0.3)},
                           {"u_m", num(0.6)},
                           {"lambda_g", num(10)},
                           {"easy_margin", flag(false)}});
  check_against_naive(*head, naive_magface(q), p);
}

CATCH_TEST_CASE("MagFace's regulariser is lambda_g g(a) per sample, flat outside [l_a, u_a]") {
  auto head = head_plugin("magface", 3, 2);
  at::Tensor x = doubles({3, 4, 0, 50, 200, 0}, {3, 2}).requires_grad_(true);  // ‖x‖ 5, 50, 200
  at::Tensor r = head->regularizer(x, longs({0, 1, 2}));
  auto g = [](double a) { return 35 * (a / (110.0 * 110.0) + 1 / a); };
  CATCH_CHECK(r[0].item<double>() == Approx(g(10)).epsilon(1e-14));
  CATCH_CHECK(r[1].item<double>() == Approx(g(50)).epsilon(1e-14));
  CATCH_CHECK(r[2].item<double>() == Approx(g(110)).epsilon(1e-14));
  r.sum().backward();
  // Clamped rows get no gradient; inside, d g/d a = 35 (1/u_a² − 1/a²) along x/‖x‖.
  CATCH_CHECK(x.grad()[0].abs().max().item<double>() == 0);
  CATCH_CHECK(x.grad()[2].abs().max().item<double>() == 0);
  CATCH_CHECK(x.grad()[1][1].item<double>() ==
              Approx(35 * (1 / (110.0 * 110.0) - 1 / 2500.0)).epsilon(1e-12));
}

CATCH_TEST_CASE("MagFace rejects bounds out of order") {
  auto make = [](const Values& v) {
    return flatface::make_head(step_plugins(), PluginRef{"magface", options_of("head", v)}, 4, 3);
  };
  CATCH_CHECK_THROWS_AS(make({{"l_a", num(50)}, {"u_a", num(40)}}), ConfigError);
  CATCH_CHECK_THROWS_AS(make({{"l_m", num(0.9)}, {"u_m", num(0.5)}}), ConfigError);
  CATCH_CHECK_THROWS_AS(make({{"u_m", num(4.0)}}), ConfigError);
  CATCH_CHECK_THROWS_AS(make({{"lambda_g", num(-1)}}), ConfigError);
  CATCH_CHECK_THROWS_AS(make({{"lambdag", num(1)}}), ConfigError);
  CATCH_CHECK_NOTHROW(make({{"s", num(32)}, {"easy_margin", flag(false)}}));
}

// ------------------------------------------------------------------------------ ElasticFace

CATCH_TEST_CASE(
    "ElasticFace equals the authors' ElasticArcFace and ElasticCosFace, plain and plus") {
  auto ref = reference("elasticface.json");
  const auto seed = static_cast<std::uint64_t>(ref["seed"].get<double>());
  const auto step = static_cast<std::int64_t>(ref["step"].get<double>());
  for (const auto& c : ref["cases"]) {
    const std::string variant = c["variant"].get<std::string>();
    CATCH_CAPTURE(variant, c["plus"].get<bool>());
    auto head = head_with_seed(
        "elasticface", 5, 4, {{"variant", text(variant)}, {"plus", flag(c["plus"].get<bool>())}}, seed);
    head->begin_step(at_step(step));
    check_against_reference(*head, ref, c, static_cast<std::int64_t>(c["rows"].get<double>()));
  }
}

CATCH_TEST_CASE("ElasticFace follows its equations with the margins drawn for (seed, step, row)") {
  auto ref = reference("elasticface.json");
  Problem p = problem_of(ref);  // row 4: cos θ = −0.95, θ + m > π (no fallback, as theirs)
  for (bool arc : {true, false}) {
    const double m = arc ? 0.5 : 0.35, sigma = 0.1;
    for (std::int64_t step : {0, 1, 17}) {
      CATCH_CAPTURE(arc, step);
      auto head = head_with_seed(
          "elasticface", 5, 4, {{"variant", text(arc ? "arc" : "cos")}, {"sigma", num(sigma)}}, 42);
      head->begin_step(at_step(step));
      std::vector<double> margins;
      for (std::int64_t i = 0; i < 5; ++i)
        margins.push_back(m + sigma * elastic_normal(42, step, i));
      check_against_naive(*head, naive_elastic(arc, 64, margins), p);
    }
  }
}

CATCH_TEST_CASE(
    "ElasticFace repeats for one (seed, step) and draws afresh for another step or seed") {
  auto ref = reference("elasticface.json");
  at::Tensor x = matrix_of(ref["x"]), w = matrix_of(ref["weight"]), y = labels_of(ref["labels"]);
  auto logits = [&](std::uint64_t seed, std::int64_t step) {
    auto head = head_with_seed("elasticface", 5, 4, {{"variant", text("cos")}}, seed);
    set_parameter(*head, "weight", w);
    head->begin_step(at_step(step));
    return head->logits(x, y).detach();
  };
  CATCH_CHECK(max_abs_diff(logits(3, 5), logits(3, 5)) == 0);
  CATCH_CHECK(max_abs_diff(logits(3, 5), logits(3, 6)) > 1e-3);
  CATCH_CHECK(max_abs_diff(logits(3, 5), logits(4, 5)) > 1e-3);
  // The first step draws too (no step is margin-free), and twice in a step is the same draw.
  auto head = head_with_seed("elasticface", 5, 4, {{"variant", text("cos")}}, 3);
  set_parameter(*head, "weight", w);
  head->begin_step(at_step(0));
  at::Tensor first = head->logits(x, y).detach();
  CATCH_CHECK(max_abs_diff(first, head->logits(x, y).detach()) == 0);
  at::Tensor cos = head->cosine(x);
  at::Tensor drawn = (cos.gather(1, y.view({-1, 1})) - first.gather(1, y.view({-1, 1})) / 64);
  CATCH_CHECK(drawn.min().item<double>() != drawn.max().item<double>());
}

CATCH_TEST_CASE("ElasticFace's margins are N(m, sigma) over many rows") {
  const std::int64_t n = 20000;
  auto head = head_with_seed("elasticface", 2, 2,
                             {{"variant", text("cos")}, {"m", num(0.35)}, {"sigma", num(0.05)}}, 9);
  head->begin_step(at_step(12));
  set_parameter(*head, "weight", doubles({1, 0, 0, 1}, {2, 2}));
  at::Tensor x = at::ones({n, 2}, at::kDouble);
  at::Tensor y = at::zeros({n}, at::kLong);
  at::Tensor margins = std::sqrt(0.5) - head->logits(x, y).detach().select(1, 0) / 64;
  CATCH_CHECK(std::abs(margins.mean().item<double>() - 0.35) < 4 * 0.05 / std::sqrt(n));
  CATCH_CHECK(margins.std().item<double>() == Approx(0.05).epsilon(0.03));
}

CATCH_TEST_CASE("ElasticFace+ gives the largest target cosine the smallest margin") {
  // Target cosines 0.1, 0.9, 0.5, -0.2: the order by cosine (1, 2, 0, 3) is not its own inverse.
  const std::vector<double> c{0.1, 0.9, 0.5, -0.2};
  auto head =
      head_with_seed("elasticface", 4, 5,
                     {{"variant", text("cos")}, {"plus", flag(true)}, {"sigma", num(0.1)}}, 5);
  head->begin_step(at_step(2));
  at::Tensor w = at::zeros({4, 5}, at::kDouble), x = at::zeros({4, 5}, at::kDouble);
  for (int i = 0; i < 4; ++i) {  // x_i = c_i e0 + sqrt(1 − c_i²) e_{i+1}, w_i = e0
    w[i][0] = 1;
    x[i][0] = c[i];
    x[i][i + 1] = std::sqrt(1 - c[i] * c[i]);
  }
  set_parameter(*head, "weight", w);
  at::Tensor y = longs({0, 1, 2, 3});
  at::Tensor out = head->logits(x, y).detach();
  std::vector<double> drawn;
  for (int i = 0; i < 4; ++i) drawn.push_back(0.35 + 0.1 * elastic_normal(5, 2, i));
  const std::vector<double> expected = paired_by_rank(drawn, c);
  for (int i = 0; i < 4; ++i)
    CATCH_CHECK(out[i][i].item<double>() == Approx(64 * (c[i] - expected[i])).epsilon(1e-12));
}

CATCH_TEST_CASE("ElasticFace draws on a rank what one process draws for the same rows") {
  auto ref = reference("elasticface.json");
  at::Tensor x = matrix_of(ref["x"]), w = matrix_of(ref["weight"]), y = labels_of(ref["labels"]);
  for (bool plus : {false, true}) {
    CATCH_CAPTURE(plus);
    const Values v{{"variant", text("arc")}, {"plus", flag(plus)}};
    auto whole = head_with_seed("elasticface", 5, 4, v, 8);
    set_parameter(*whole, "weight", w);
    whole->begin_step(at_step(4));
    at::Tensor expected = whole->logits(x, y).detach().narrow(0, 2, 3);
    // Rank 1 holds rows 2..4 of the global batch of 5; its partner's target cosines are rows 0, 1.
    at::Tensor partner = at::zeros({5}, at::kDouble);
    partner.narrow(0, 0, 2).copy_(
        whole->cosine(x).detach().gather(1, y.view({-1, 1})).view({-1}).narrow(0, 0, 2));
    TwoRanks ranks(partner);
    auto rank1 = head_with_seed("elasticface", 5, 4, v, 8, ranks);
    set_parameter(*rank1, "weight", w);
    HeadStep s = at_step(4);
    s.first_row = 2;
    s.global_rows = 5;
    rank1->begin_step(s);
    CATCH_CHECK(max_abs_diff(rank1->logits(x.narrow(0, 2, 3), y.narrow(0, 2, 3)), expected) <
                1e-12);
  }
}

// ------------------------------------------------------------------------------- SphereFace

CATCH_TEST_CASE(
    "SphereFace equals sphereface_pytorch's AngleLinear and AngleLoss at each iteration") {
  auto ref = reference("sphereface.json");
  for (const auto& c : ref["cases"]) {
    const auto it = static_cast<std::int64_t>(c["iteration"].get<double>());
    CATCH_CAPTURE(it);
    auto head = head_plugin("sphereface", 5, 4, {{"base", num(1500)}, {"gamma", num(0.1)}});
    head->begin_step(at_step(it - 1));  // their `it` counts the step being taken, from 1
    check_against_reference(*head, ref, c);
  }
}

CATCH_TEST_CASE("SphereFace follows psi(theta) on every branch k, with lambda annealed by step") {
  auto ref = reference("sphereface.json");
  Problem p = problem_of(ref);
  for (std::size_t i = 0; i < 4; ++i)  // the rows cover k = 0, 1, 2, 3 for m = 4
    CATCH_REQUIRE(std::floor(4 * std::acos(cosine(p.x[i], p.w[p.y[i]])) / M_PI) == i);
  for (std::int64_t step : {0, 1, 9, 100, 100000}) {
    CATCH_CAPTURE(step);
    const double lambda = sphere_lambda(step, 1000, 0.12, 1, 5);  // the original's defaults
    auto head = head_plugin("sphereface", 5, 4);
    head->begin_step(at_step(step));
    check_against_naive(*head, naive_sphere(4, lambda), p, 1e-5);
  }
  CATCH_CHECK(sphere_lambda(0, 1000, 0.12, 1, 5) == Approx(1000 / 1.12));
  CATCH_CHECK(sphere_lambda(100000, 1000, 0.12, 1, 5) == 5);
  for (int m : {1, 2, 3}) {  // other margins, past the first step's λ
    CATCH_CAPTURE(m);
    auto head = head_plugin("sphereface", 5, 4, {{"m", integer(m)}, {"lambda_min", num(0.5)}});
    head->begin_step(at_step(20000));
    check_against_naive(*head, naive_sphere(m, sphere_lambda(20000, 1000, 0.12, 1, 0.5)), p, 1e-5);
  }
}

CATCH_TEST_CASE(
    "SphereFace's psi by hand: 1 - 2k at the branch edges, -1.5 at 60 deg, -4.5 at 120") {
  // λ ≈ 0 (base 1e-12, λ_min 0): the target logit is ‖x‖ ψ(θ).
  auto head = head_plugin("sphereface", 1, 2, {{"base", num(1e-12)}, {"lambda_min", num(0)}});
  set_parameter(*head, "weight", doubles({1, 0}, {1, 2}));
  auto target = [&](double theta) {
    at::Tensor x = doubles({2 * std::cos(theta), 2 * std::sin(theta)}, {1, 2});
    return head->logits(x, longs({0})).item<double>() / 2;
  };
  CATCH_CHECK(target(0.0) == Approx(1.0).margin(1e-9));
  CATCH_CHECK(target(M_PI / 3) == Approx(-1.5).margin(1e-9));      // k = 1: −cos(4π/3) − 2
  CATCH_CHECK(target(2 * M_PI / 3) == Approx(-4.5).margin(1e-9));  // k = 2: cos(8π/3) − 4
  CATCH_CHECK(target(M_PI / 2 + 1e-9) == Approx(-3.0).margin(1e-6));
  CATCH_CHECK(target(M_PI / 2 - 1e-9) == Approx(-3.0).margin(1e-6));
}

CATCH_TEST_CASE("SphereFace rejects a margin that is not a small positive integer") {
  auto make = [](const Values& v) {
    return flatface::make_head(step_plugins(), PluginRef{"sphereface", options_of("head", v)}, 4,
                               3);
  };
  CATCH_CHECK_THROWS_AS(make({{"m", integer(0)}}), ConfigError);
  CATCH_CHECK_THROWS_AS(make({{"m", num(1.5)}}), ConfigError);
  CATCH_CHECK_THROWS_AS(make({{"base", num(0)}}), ConfigError);
  CATCH_CHECK_NOTHROW(make({{"m", integer(2)}, {"power", num(0.5)}}));
}

// ------------------------------------------------------------------ training and checkpoints

namespace {

TrainSettings sgd_settings() {
  TrainSettings t;
  t.lr = 0.1;
  t.momentum = 0.9;
  t.weight_decay = 5e-4;
  return t;
}

at::Tensor batch_x(std::int64_t step) {
  at::Tensor base = doubles(
      {0.3, -1.2, 0.5,  0.9,  -0.1, 1.1,  0.4,  -0.7, 0.2,  0.6,  -0.5, 0.8,  1.3,  -0.9, 0.05,
       0.7, 0.1,  -0.3, -1.0, 0.45, -0.8, 0.25, 0.9,  0.35, -0.6, 0.15, -0.4, 0.65, 1.2,  -0.2},
      {6, 5});
  return base * (1.0 + 0.1 * static_cast<double>(step)) +
         0.05 * static_cast<double>(step % 3) * at::ones({6, 5}, at::kDouble);
}
at::Tensor batch_y() {
  return longs({0, 2, 1, 1, 0, 2});
}

// The tiny heads' settings: MagFace's magnitude range around the Linear+BN embeddings' (‖x‖ ≈ 2).
Values tiny_options(const std::string& head) {
  if (head == "magface") return {{"s", num(8)}, {"l_a", num(0.5)}, {"u_a", num(5)}};
  if (head == "elasticface") return {{"s", num(8)}, {"sigma", num(0.1)}};
  return {{"base", num(100)}, {"gamma", num(0.5)}};
}

struct Rig {
  std::shared_ptr<LinearBnBackbone> backbone;
  std::shared_ptr<MarginHead> head;
  std::unique_ptr<torch::optim::SGD> optimizer;
  std::unique_ptr<TrainStep> step;
  Rig(const std::string& name, std::uint64_t init_seed) {
    torch::manual_seed(init_seed);
    backbone = std::make_shared<LinearBnBackbone>(5, 4);
    backbone->to(at::kDouble);
    head = head_with_seed(name, 3, 4, tiny_options(name), 11);
    optimizer = make_sgd(*backbone, *head, sgd_settings());
    step = std::make_unique<TrainStep>(backbone, head, *optimizer, TrainStepOptions{});
  }
  std::vector<at::Tensor> weights() { return clones(trainable(*backbone, *head)); }
};

}  // namespace

CATCH_TEST_CASE(
    "each new head trains with none, sam and aace, and the step's loss includes its term") {
  for (const char* name : {"magface", "elasticface", "sphereface"}) {
    for (const char* plugin : {"none", "sam", "aace"}) {
      CATCH_CAPTURE(name, plugin);
      Rig rig(name, 1);
      auto steps =
          plugin == std::string("none") ? strategy(plugin) : strategy(plugin, {{"rho", num(0.05)}});
      rig.step->set_progress(3, 10);
      std::vector<at::Tensor> before = rig.weights();
      for (std::int64_t k = 0; k < 3; ++k) {
        // L_margin(w) of the step's first pass, as the test computes it (its own copy of the
        // model, so that the BN statistics of the real one stay as they are).
        Rig copy(name, 1);
        copy_state(*copy.backbone, *rig.backbone);
        copy_state(*copy.head, *rig.head);
        copy.head->begin_step(at_step(3 + k));
        const double expected =
            margin_loss_of(*copy.backbone, *copy.head, batch_x(k), batch_y()).item<double>();
        StepStats stats = rig.step->run(*steps, batch_x(k), batch_y());
        CATCH_CHECK(std::isfinite(stats.loss));
        CATCH_CHECK(stats.loss == Approx(expected).epsilon(1e-12));
      }
      double moved = 0;
      auto after = rig.weights();
      for (std::size_t i = 0; i < after.size(); ++i) moved += max_abs_diff(after[i], before[i]);
      CATCH_CHECK(moved > 1e-4);
    }
  }
}

CATCH_TEST_CASE("the host begins each step of a head with the step's index") {
  Rig rig("sphereface", 1);
  auto none = strategy("none");
  rig.step->set_progress(41, 100);
  rig.step->run(*none, batch_x(0), batch_y());
  CATCH_CHECK(rig.head->named_buffers()["lambda"].item<double>() ==
              Approx(sphere_lambda(41, 100, 0.5, 1, 5)).epsilon(1e-12));
  rig.step->run(*none, batch_x(1), batch_y());
  CATCH_CHECK(rig.head->named_buffers()["lambda"].item<double>() ==
              Approx(sphere_lambda(42, 100, 0.5, 1, 5)).epsilon(1e-12));
}

CATCH_TEST_CASE("a run of each new head resumed from a checkpoint continues exactly") {
  TempDir dir("heads-resume");
  for (const char* name : {"magface", "elasticface", "sphereface"}) {
    CATCH_CAPTURE(name);
    auto sam = strategy("sam", {{"rho", num(0.05)}});
    Rig straight(name, 1);
    for (std::int64_t k = 0; k < 4; ++k) straight.step->run(*sam, batch_x(k), batch_y());

    Rig first(name, 1);
    for (std::int64_t k = 0; k < 2; ++k) first.step->run(*sam, batch_x(k), batch_y());
    TrainingState state;
    state.global_step = 2;
    const std::string path = dir / (std::string(name) + ".ckpt");
    save_checkpoint(path, state, *first.backbone, *first.head, *first.optimizer);

    Rig resumed(name, 2);  // other initial weights: everything must come from the checkpoint
    load_checkpoint(path, *resumed.backbone, *resumed.head, *resumed.optimizer);
    // The head's state, without a step begun: it scores as the step it last trained.
    auto logits_of = [&](MarginHead& h, Backbone& b) {
      at::NoGradGuard no_grad;
      return h.logits(b.forward(batch_x(1)), batch_y());
    };
    first.backbone->eval();
    resumed.backbone->eval();
    CATCH_CHECK(max_abs_diff(logits_of(*resumed.head, *resumed.backbone),
                             logits_of(*first.head, *first.backbone)) < 1e-12);
    resumed.backbone->train();
    resumed.step->set_progress(2, 0);
    for (std::int64_t k = 2; k < 4; ++k) resumed.step->run(*sam, batch_x(k), batch_y());
    auto a = straight.weights(), b = resumed.weights();
    for (std::size_t i = 0; i < a.size(); ++i) CATCH_CHECK(max_abs_diff(a[i], b[i]) < 1e-12);
  }
}

CATCH_TEST_CASE("ESAM ranks samples by the whole per-sample loss, MagFace's term included") {
  Rig rig("magface", 1);
  auto esam = strategy("esam", {{"rho", num(0.05)}, {"beta", num(1.0)}, {"gamma", num(0.5)}});
  Rig copy("magface", 1);
  copy_state(*copy.backbone, *rig.backbone);
  copy_state(*copy.head, *rig.head);
  const double expected =
      margin_loss_of(*copy.backbone, *copy.head, batch_x(0), batch_y()).item<double>();
  StepStats stats = rig.step->run(*esam, batch_x(0), batch_y());
  CATCH_CHECK(stats.loss == Approx(expected).epsilon(1e-12));
  CATCH_CHECK(std::isfinite(*stats.loss_perturbed));
}
