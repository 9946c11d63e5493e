// The heads researchers compare against (CurricularFace, AdaCos, MV-Softmax, Circle loss, combined
// margin), loaded through the plugin registry, against
// - a second, naive implementation of each paper's equations written here (plain loops in double:
//   the logits, their derivative by the cosines, and the loss gradient by the chain rule through
//   the normalisations), with the edge cases each paper names;
// - the numbers the authors' own heads printed on the same batch (tests/reference/*_reference.py,
//   stored in tests/reference/data/);
// - data parallel: two ranks (threads) reduce the batch statistics to those of one process, and
//   `flatface run --nproc 2` (Gloo) trains as one process does;
// - training with none / sam / aace, the statistics updated once per step, and the state carried
//   through a state_dict file.
#include <ATen/ops/cat.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/equal.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "catch_compat.hpp"
#include "cli_test_support.hpp"
#include "formats/state_dict.hpp"
#include "step_test_support.hpp"
#include "test_support.hpp"
#include "tiny_grid.hpp"
#include "training/optimizer.hpp"
#include "training/train_step.hpp"

using namespace flatface;
using namespace flatface::testing;

namespace {

using Matrix = std::vector<std::vector<double>>;
using Labels = std::vector<std::int64_t>;

// ---- the naive side: plain loops in double ----

Matrix matrix_from(const Json& v) {
  Matrix m;
  for (const auto& row : v) m.push_back(numbers_of(row));
  return m;
}
Labels labels_from(const Json& v) {
  return v.get<Labels>();
}
double norm(const std::vector<double>& v) {
  double s = 0;
  for (double e : v) s += e * e;
  return std::sqrt(s);
}
// cos θ_ij = <x_i, w_j> / (‖x_i‖ ‖w_j‖)
Matrix cosines(const Matrix& x, const Matrix& w) {
  Matrix c(x.size(), std::vector<double>(w.size()));
  for (std::size_t i = 0; i < x.size(); ++i)
    for (std::size_t j = 0; j < w.size(); ++j) {
      double dot = 0;
      for (std::size_t k = 0; k < x[i].size(); ++k) dot += x[i][k] * w[j][k];
      c[i][j] = dot / (norm(x[i]) * norm(w[j]));
    }
  return c;
}

// Logits z_ij and their derivative ∂z_ij/∂cos θ_ij (every head here makes z_ij a function of
// cos θ_ij alone, the target's cosine entering the others only through a mask or a detached
// weight).
struct Naive {
  Matrix z, dz;
  explicit Naive(const Matrix& cos)
      : z(cos.size(), std::vector<double>(cos[0].size())),
        dz(cos.size(), std::vector<double>(cos[0].size())) {}
};

// What the head should give: logits, the mean cross-entropy and its gradient by x and W.
struct Expected {
  Matrix logits;
  double loss = 0;
  Matrix grad_x, grad_w;
};
Expected expected_of(const Matrix& x, const Matrix& w, const Labels& y, const Naive& n) {
  const std::size_t rows = x.size(), classes = w.size(), dim = x[0].size();
  Expected e{n.z, 0, Matrix(rows, std::vector<double>(dim)),
             Matrix(classes, std::vector<double>(dim))};
  const Matrix cos = cosines(x, w);
  for (std::size_t i = 0; i < rows; ++i) {
    const double top = *std::max_element(n.z[i].begin(), n.z[i].end());
    double sum = 0;
    for (double v : n.z[i]) sum += std::exp(v - top);
    e.loss += (top + std::log(sum) - n.z[i][static_cast<std::size_t>(y[i])]) / rows;
    for (std::size_t j = 0; j < classes; ++j) {
      // ∂L/∂cos_ij = (softmax_ij − [j = y_i]) / N · ∂z_ij/∂cos_ij
      const double p = std::exp(n.z[i][j] - top) / sum;
      const double g = (p - (static_cast<std::int64_t>(j) == y[i] ? 1.0 : 0.0)) / rows * n.dz[i][j];
      // ∂cos_ij/∂x_i = (ŵ_j − cos_ij x̂_i)/‖x_i‖,  ∂cos_ij/∂w_j = (x̂_i − cos_ij ŵ_j)/‖w_j‖
      const double nx = norm(x[i]), nw = norm(w[j]);
      for (std::size_t k = 0; k < dim; ++k) {
        const double xk = x[i][k] / nx, wk = w[j][k] / nw;
        e.grad_x[i][k] += g * (wk - cos[i][j] * xk) / nx;
        e.grad_w[j][k] += g * (xk - cos[i][j] * wk) / nw;
      }
    }
  }
  return e;
}

// CurricularFace: t ← α mean cos θ_y + (1 − α) t when updating, then the target cos(θ_y + m)
// (cos θ_y − m sin m where θ_y + m > π) and hard negatives cos θ_j (t + cos θ_j).
Naive curricularface(const Matrix& cos, const Labels& y, double s, double m, double& t,
                     bool update) {
  if (update) {
    double mean = 0;
    for (std::size_t i = 0; i < cos.size(); ++i)
      mean += cos[i][static_cast<std::size_t>(y[i])] / cos.size();
    t = 0.01 * mean + 0.99 * t;
  }
  Naive n(cos);
  for (std::size_t i = 0; i < cos.size(); ++i) {
    const auto yi = static_cast<std::size_t>(y[i]);
    const double c = cos[i][yi], theta = std::acos(c);
    const double border = std::cos(theta + m);
    for (std::size_t j = 0; j < cos[i].size(); ++j) {
      const double v = cos[i][j];
      if (j == yi && theta + m <= M_PI) {
        n.z[i][j] = border, n.dz[i][j] = std::sin(theta + m) / std::sin(theta);
      } else if (j == yi) {
        n.z[i][j] = c - m * std::sin(m), n.dz[i][j] = 1;
      } else if (v > border) {
        n.z[i][j] = v * (t + v), n.dz[i][j] = t + 2 * v;
      } else {
        n.z[i][j] = v, n.dz[i][j] = 1;
      }
      n.z[i][j] *= s, n.dz[i][j] *= s;
    }
  }
  return n;
}

// AdaCos: s cos θ; the dynamic scale first becomes log(B_avg)/cos(min(π/4, θ_med)).
Naive adacos(const Matrix& cos, const Labels& y, double& s, bool update) {
  if (update) {
    double b = 0;
    std::vector<double> angles;
    for (std::size_t i = 0; i < cos.size(); ++i)
      for (std::size_t j = 0; j < cos[i].size(); ++j) {
        if (static_cast<std::int64_t>(j) == y[i])
          angles.push_back(std::acos(std::clamp(cos[i][j], -1 + 1e-7, 1 - 1e-7)));
        else
          b += std::exp(s * cos[i][j]) / cos.size();
      }
    std::sort(angles.begin(), angles.end());
    const double median = angles[(angles.size() - 1) / 2];  // the lower one
    s = std::log(b) / std::cos(std::min(M_PI / 4, median));
  }
  Naive n(cos);
  for (std::size_t i = 0; i < cos.size(); ++i)
    for (std::size_t j = 0; j < cos[i].size(); ++j) n.z[i][j] = s * cos[i][j], n.dz[i][j] = s;
  return n;
}

// MV-Softmax: target cos θ_y − m (am, where cos θ_y > m) or cos(θ_y + m) (arc, where cos θ_y > 0);
// others above that border are mis-classified: cos + t, or (t + 1) cos + t adaptive.
Naive mv_softmax(const Matrix& cos, const Labels& y, bool arc, double s, double m, double t,
                 bool adaptive) {
  Naive n(cos);
  for (std::size_t i = 0; i < cos.size(); ++i) {
    const auto yi = static_cast<std::size_t>(y[i]);
    const double c = cos[i][yi], theta = std::acos(c);
    const double border = arc ? std::cos(theta + m) : c - m;
    for (std::size_t j = 0; j < cos[i].size(); ++j) {
      const double v = cos[i][j];
      if (j == yi && arc && c > 0) {
        n.z[i][j] = border, n.dz[i][j] = std::sin(theta + m) / std::sin(theta);
      } else if (j == yi && !arc && c > m) {
        n.z[i][j] = border, n.dz[i][j] = 1;
      } else if (j == yi || v <= border) {
        n.z[i][j] = v, n.dz[i][j] = 1;
      } else if (adaptive) {
        n.z[i][j] = (t + 1) * v + t, n.dz[i][j] = t + 1;
      } else {
        n.z[i][j] = v + t, n.dz[i][j] = 1;
      }
      n.z[i][j] *= s, n.dz[i][j] *= s;
    }
  }
  return n;
}

// Circle loss: γ α (cos − Δ), α_p = [1 + m − cos]_+, Δ_p = 1 − m; α_n = [cos + m]_+, Δ_n = m.
Naive circle(const Matrix& cos, const Labels& y, double m, double gamma) {
  Naive n(cos);
  for (std::size_t i = 0; i < cos.size(); ++i)
    for (std::size_t j = 0; j < cos[i].size(); ++j) {
      const double v = cos[i][j];
      const bool target = static_cast<std::int64_t>(j) == y[i];
      const double alpha = target ? std::max(0.0, 1 + m - v) : std::max(0.0, v + m);
      n.z[i][j] = gamma * alpha * (v - (target ? 1 - m : m));
      n.dz[i][j] = gamma * alpha;  // α is a constant weight
    }
  return n;
}

// Combined margin: s (cos(m1 θ_y + m2) − m3); cos θ_y − m2 sin m2 − m3 where m1 θ_y + m2 > π;
// straight through: cos(m1 θ_y + m2) − m3 everywhere, derivative 1.
Naive combined(const Matrix& cos, const Labels& y, double s, double m1, double m2, double m3,
               bool straight_through) {
  Naive n(cos);
  for (std::size_t i = 0; i < cos.size(); ++i)
    for (std::size_t j = 0; j < cos[i].size(); ++j) {
      const double v = cos[i][j], theta = std::acos(v), a = m1 * theta + m2;
      if (static_cast<std::int64_t>(j) != y[i]) {
        n.z[i][j] = v, n.dz[i][j] = 1;
      } else if (straight_through) {
        n.z[i][j] = std::cos(a) - m3, n.dz[i][j] = 1;
      } else if (a <= M_PI) {
        n.z[i][j] = std::cos(a) - m3, n.dz[i][j] = m1 * std::sin(a) / std::sin(theta);
      } else {
        n.z[i][j] = v - m2 * std::sin(m2) - m3, n.dz[i][j] = 1;
      }
      n.z[i][j] *= s, n.dz[i][j] *= s;
    }
  return n;
}

// ---- the plugin side ----

at::Tensor tensor_of(const Matrix& m) {
  std::vector<double> flat;
  for (const auto& row : m) flat.insert(flat.end(), row.begin(), row.end());
  return doubles(flat,
                 {static_cast<std::int64_t>(m.size()), static_cast<std::int64_t>(m[0].size())});
}

// The fixed batch of the reference scripts (tests/reference/snapshot.py): C = 5, D = 4, N = 6.
struct Batch {
  Matrix x, w;
  Labels y;
};
Json reference(const std::string& head) {
  return load_json(std::string(FLATFACE_TEST_SOURCE_DIR) + "/reference/data/" + head + ".json");
}
Batch fixed_batch() {
  auto ref = reference("curricularface");
  return {matrix_from(ref["embeddings"]), matrix_from(ref["weight_CxD"]),
          labels_from(ref["labels"])};
}

struct HeadPass {
  at::Tensor logits;
  double loss;
  at::Tensor grad_x, grad_w;
};
// One forward and backward pass of the head on x, y with its class weights set to w.
HeadPass pass_of(MarginHead& head, const Matrix& x, const Matrix& w, const Labels& y) {
  set_parameter(head, "weight", tensor_of(w));
  at::Tensor xr = tensor_of(x).requires_grad_(true);
  at::Tensor weight = head.named_parameters()["weight"];
  at::Tensor labels = longs(y);
  at::Tensor z = head.logits(xr, labels);
  at::Tensor loss = at::cross_entropy_loss(z, labels);
  auto g = grad_of(loss, {xr, weight});
  return {z.detach(), loss.item<double>(), g[0], g[1]};
}

double diff(const at::Tensor& a, const Matrix& b) {
  return max_abs_diff(a, tensor_of(b));
}
// The head's pass against the naive expectation: logits, loss and both gradients.
void check_pass(const HeadPass& p, const Expected& e, double tol = 1e-10) {
  CATCH_CHECK(diff(p.logits, e.logits) < tol);
  CATCH_CHECK(std::abs(p.loss - e.loss) < tol);
  CATCH_CHECK(diff(p.grad_x, e.grad_x) < tol);
  CATCH_CHECK(diff(p.grad_w, e.grad_w) < tol);
}
// The head's pass against the numbers the authors' code printed (both in float64; they agree to
// about 1e-14).
void check_reference(const HeadPass& p, const Json& ref, double tol = 1e-11) {
  CATCH_CHECK(diff(p.logits, matrix_from(ref["logits"])) < tol);
  CATCH_CHECK(std::abs(p.loss - ref["loss"].get<double>()) < tol);
  CATCH_CHECK(diff(p.grad_x, matrix_from(ref["grad_embeddings"])) < tol);
  CATCH_CHECK(diff(p.grad_w, matrix_from(ref["grad_weight"])) < tol);
}

double buffer(MarginHead& head, const std::string& name) {
  return head.named_buffers()[name].item<double>();
}

}  // namespace

// ---- CurricularFace ----

CATCH_TEST_CASE(
    "CurricularFace: t's first steps, hard negatives cos (t + cos), the ArcFace target and its "
    "fallback where theta + m > pi, from the paper's equations") {
  const Batch b = fixed_batch();
  const Matrix cos = cosines(b.x, b.w);
  // Row 2's target lies beyond π − m: the fallback is exercised.
  CATCH_REQUIRE(std::acos(cos[2][2]) + 0.5 > M_PI);
  auto head = head_plugin("curricularface", 5, 4);  // s = 64, m = 0.5, t_alpha = 0.01
  CATCH_CHECK(buffer(*head, "t") == 0.0);           // t starts at 0
  double t = 0;
  // First step: t = 0.01 mean(cos θ_y), already used for this step's hard negatives.
  Naive n1 = curricularface(cos, b.y, 64, 0.5, t, true);
  check_pass(pass_of(*head, b.x, b.w, b.y), expected_of(b.x, b.w, b.y, n1));
  CATCH_CHECK(buffer(*head, "t") == catch_compat::Approx(t).epsilon(1e-14));
  CATCH_CHECK(t > 0);
  // The second pass of a step (statistics off): t is used, not updated.
  head->set_update_statistics(false);
  Naive frozen = curricularface(cos, b.y, 64, 0.5, t, false);
  check_pass(pass_of(*head, b.x, b.w, b.y), expected_of(b.x, b.w, b.y, frozen));
  CATCH_CHECK(buffer(*head, "t") == catch_compat::Approx(t).epsilon(1e-14));
  // The next step moves t on.
  head->set_update_statistics(true);
  const double t1 = t;
  Naive n2 = curricularface(cos, b.y, 64, 0.5, t, true);
  check_pass(pass_of(*head, b.x, b.w, b.y), expected_of(b.x, b.w, b.y, n2));
  CATCH_CHECK(buffer(*head, "t") == catch_compat::Approx(t).epsilon(1e-14));
  CATCH_CHECK(t != t1);
}

CATCH_TEST_CASE(
    "CurricularFace equals the authors' head (HuangYG123/CurricularFace) over two steps") {
  const Batch b = fixed_batch();
  auto ref = reference("curricularface");
  auto head = head_plugin("curricularface", 5, 4,
                          {{"s", num(ref["options"]["s"].get<double>())},
                           {"m", num(ref["options"]["m"].get<double>())}});
  for (std::size_t k = 0; k < ref["passes"].size(); ++k) {
    CATCH_CAPTURE(k);
    const auto& r = ref["passes"][k];
    CATCH_CHECK(buffer(*head, "t") ==
                catch_compat::Approx(r["t_before"].get<double>()).margin(1e-15));
    check_reference(pass_of(*head, b.x, b.w, b.y), r);
    CATCH_CHECK(buffer(*head, "t") ==
                catch_compat::Approx(r["t_after"].get<double>()).epsilon(1e-12));
  }
}

// ---- AdaCos ----

CATCH_TEST_CASE("AdaCos's fixed scale is sqrt(2) log(C - 1) and never moves") {
  const Batch b = fixed_batch();
  auto head = head_plugin("adacos", 5, 4, {{"dynamic", flag(false)}});
  CATCH_CHECK(head->named_buffers().is_empty());  // no state
  double s = std::sqrt(2.0) * std::log(4.0);
  for (int step = 0; step < 2; ++step) {
    check_pass(pass_of(*head, b.x, b.w, b.y),
               expected_of(b.x, b.w, b.y, adacos(cosines(b.x, b.w), b.y, s, false)));
  }
}

CATCH_TEST_CASE(
    "AdaCos's dynamic scale: B_avg with the previous s, the lower median target angle capped at "
    "pi/4, the new s already in the step that finds it, none in the second pass") {
  const Batch b = fixed_batch();
  const Matrix cos = cosines(b.x, b.w);
  // The given labels: median angle 0.778 < π/4; labels {1, 2, 3, 4, 0, 1}: 1.719, capped.
  for (const Labels& y : {b.y, Labels{1, 2, 3, 4, 0, 1}}) {
    CATCH_CAPTURE(y[0]);
    auto head = head_plugin("adacos", 5, 4);
    CATCH_CHECK(buffer(*head, "scale") == 0.0);  // not yet updated: the fixed scale stands in
    double s = std::sqrt(2.0) * std::log(4.0);
    const double s0 = s;
    Naive n1 = adacos(cos, y, s, true);
    check_pass(pass_of(*head, b.x, b.w, y), expected_of(b.x, b.w, y, n1));
    CATCH_CHECK(buffer(*head, "scale") == catch_compat::Approx(s).epsilon(1e-13));
    // By hand for the capped case: s = log(B_avg) / cos(π/4).
    if (y[0] == 1) {
      double bsum = 0;
      for (std::size_t i = 0; i < 6; ++i)
        for (std::size_t j = 0; j < 5; ++j)
          if (static_cast<std::int64_t>(j) != y[i]) bsum += std::exp(s0 * cos[i][j]) / 6;
      CATCH_CHECK(s == catch_compat::Approx(std::log(bsum) * std::sqrt(2.0)).epsilon(1e-13));
    }
    head->set_update_statistics(false);
    check_pass(pass_of(*head, b.x, b.w, y), expected_of(b.x, b.w, y, adacos(cos, y, s, false)));
    CATCH_CHECK(buffer(*head, "scale") == catch_compat::Approx(s).epsilon(1e-13));
    head->set_update_statistics(true);
    Naive n2 = adacos(cos, y, s, true);
    check_pass(pass_of(*head, b.x, b.w, y), expected_of(b.x, b.w, y, n2));
    CATCH_CHECK(buffer(*head, "scale") == catch_compat::Approx(s).epsilon(1e-13));
  }
}

CATCH_TEST_CASE("AdaCos equals FaceX-Zoo's AdaCos over two steps, with and without the pi/4 cap") {
  const Batch b = fixed_batch();
  auto ref = reference("adacos");
  for (std::size_t c = 0; c < ref["cases"].size(); ++c) {
    CATCH_CAPTURE(c);
    const auto& cs = ref["cases"][c];
    const Labels y = labels_from(cs["labels"]);
    auto head = head_plugin("adacos", 5, 4);
    for (std::size_t k = 0; k < cs["passes"].size(); ++k) {
      CATCH_CAPTURE(k);
      const auto& r = cs["passes"][k];
      if (k > 0)
        CATCH_CHECK(buffer(*head, "scale") ==
                    catch_compat::Approx(r["scale_before"].get<double>()).epsilon(1e-12));
      check_reference(pass_of(*head, b.x, b.w, y), r);
      CATCH_CHECK(buffer(*head, "scale") ==
                  catch_compat::Approx(r["scale_after"].get<double>()).epsilon(1e-12));
    }
  }
}

// ---- MV-Softmax ----

CATCH_TEST_CASE(
    "MV-Softmax: mis-classified vectors cos + t or (t + 1) cos + t, AM and Arc targets with the "
    "authors' thresholds, from the paper's equations") {
  const Batch b = fixed_batch();
  const Matrix cos = cosines(b.x, b.w);
  // Rows 3 and 5 have cos θ_y ≤ 0.35 (AM keeps cos θ_y), row 2 cos θ_y ≤ 0 (Arc keeps it).
  CATCH_REQUIRE(cos[3][0] <= 0.35);
  CATCH_REQUIRE(cos[2][2] <= 0.0);
  for (bool arc : {false, true}) {
    for (bool adaptive : {false, true}) {
      CATCH_CAPTURE(arc, adaptive);
      const double m = arc ? 0.5 : 0.35;  // the defaults
      auto head = head_plugin("mv-softmax", 5, 4,
                              {{"margin", text(arc ? "arc" : "am")}, {"adaptive", flag(adaptive)}});
      check_pass(pass_of(*head, b.x, b.w, b.y),
                 expected_of(b.x, b.w, b.y, mv_softmax(cos, b.y, arc, 32, m, 0.2, adaptive)));
    }
  }
}

CATCH_TEST_CASE("MV-Softmax equals FaceX-Zoo's MV_Softmax (its mv_weight is the adaptive t + 1)") {
  const Batch b = fixed_batch();
  auto ref = reference("mv-softmax");
  for (std::size_t c = 0; c < ref["cases"].size(); ++c) {
    const auto& r = ref["cases"][c];
    const auto& o = r["options"];
    CATCH_CAPTURE(o["margin"].get<std::string>());
    auto head = head_plugin("mv-softmax", 5, 4,
                            {{"margin", text(o["margin"].get<std::string>())},
                             {"m", num(o["m"].get<double>())},
                             {"t", num(o["t"].get<double>())},
                             {"adaptive", flag(true)},
                             {"s", num(o["s"].get<double>())}});
    check_reference(pass_of(*head, b.x, b.w, b.y), r);
  }
}

// ---- Circle loss ----

CATCH_TEST_CASE("Circle loss: gamma alpha (cos - delta) with detached alpha, from the paper") {
  const Batch b = fixed_batch();
  const Matrix cos = cosines(b.x, b.w);
  CATCH_REQUIRE(cos[0][4] < -0.25);  // α_n = 0 there: the logit and its gradient vanish
  for (auto [m, gamma] : {std::pair{0.25, 256.0}, std::pair{0.4, 32.0}}) {
    CATCH_CAPTURE(m, gamma);
    auto head = m == 0.25 ? head_plugin("circle", 5, 4)  // the defaults
                          : head_plugin("circle", 5, 4, {{"m", num(m)}, {"gamma", num(gamma)}});
    HeadPass p = pass_of(*head, b.x, b.w, b.y);
    check_pass(p, expected_of(b.x, b.w, b.y, circle(cos, b.y, m, gamma)), 1e-9);
    CATCH_CHECK(p.logits[0][4].item<double>() == 0.0);
  }
}

CATCH_TEST_CASE("Circle loss equals FaceX-Zoo's CircleLoss") {
  const Batch b = fixed_batch();
  auto ref = reference("circle");
  for (std::size_t c = 0; c < ref["cases"].size(); ++c) {
    const auto& r = ref["cases"][c];
    CATCH_CAPTURE(c);
    auto head = head_plugin("circle", 5, 4,
                            {{"m", num(r["options"]["m"].get<double>())},
                             {"gamma", num(r["options"]["gamma"].get<double>())}});
    check_reference(pass_of(*head, b.x, b.w, b.y), r);
  }
}

// ---- combined margin ----

CATCH_TEST_CASE(
    "combined margin: s (cos(m1 theta + m2) - m3) for ArcFace, CosFace and combined settings, "
    "the fallback where m1 theta + m2 > pi, and straight through") {
  const Batch b = fixed_batch();
  const Matrix cos = cosines(b.x, b.w);
  CATCH_REQUIRE(std::acos(cos[2][2]) + 0.3 > M_PI);  // row 2 takes the fallback even at m2 = 0.3
  struct Setting {
    double m1, m2, m3;
    bool straight_through;
  };
  for (const Setting& g :
       {Setting{1, 0.5, 0, false}, Setting{1, 0, 0.35, false}, Setting{1, 0.3, 0.2, false},
        Setting{1.2, 0.2, 0.1, false}, Setting{1, 0.5, 0, true}, Setting{1, 0.3, 0.2, true}}) {
    CATCH_CAPTURE(g.m1, g.m2, g.m3, g.straight_through);
    auto head = head_plugin("combined-margin", 5, 4,
                            {{"m1", num(g.m1)},
                             {"m2", num(g.m2)},
                             {"m3", num(g.m3)},
                             {"straight_through", flag(g.straight_through)}});
    check_pass(
        pass_of(*head, b.x, b.w, b.y),
        expected_of(b.x, b.w, b.y, combined(cos, b.y, 64, g.m1, g.m2, g.m3, g.straight_through)),
        1e-9);
  }
  // The defaults are insightface's "combined" (1, 0.3, 0.2), s = 64.
  check_pass(pass_of(*head_plugin("combined-margin", 5, 4), b.x, b.w, b.y),
             expected_of(b.x, b.w, b.y, combined(cos, b.y, 64, 1, 0.3, 0.2, false)), 1e-9);
}

CATCH_TEST_CASE(
    "combined margin equals insightface's CombinedMarginLoss: today's (straight through) and the "
    "one before, with the fallback") {
  const Batch b = fixed_batch();
  auto ref = reference("combined-margin");
  for (std::size_t c = 0; c < ref["cases"].size(); ++c) {
    const auto& r = ref["cases"][c];
    const auto& o = r["options"];
    CATCH_CAPTURE(c);
    auto head = head_plugin("combined-margin", 5, 4,
                            {{"s", num(o["s"].get<double>())},
                             {"m1", num(o["m1"].get<double>())},
                             {"m2", num(o["m2"].get<double>())},
                             {"m3", num(o["m3"].get<double>())},
                             {"straight_through", flag(o["straight_through"].get<bool>())}});
    check_reference(pass_of(*head, b.x, b.w, b.y), r);
  }
}

// ---- data parallel ----

namespace {

// Two ranks as two threads: all_reduce_sum waits for both and hands each the sum, whatever the
// protocol of the head that calls it.
class ThreadWorld {
 public:
  void all_reduce_sum(const std::vector<at::Tensor>& tensors) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (arrived_ == 0) {
      pending_.clear();
      for (const auto& t : tensors) pending_.push_back(t.clone());
    } else {
      for (std::size_t i = 0; i < tensors.size(); ++i) pending_[i].add_(tensors[i]);
    }
    const std::int64_t round = round_;
    if (++arrived_ == 2) {
      result_ = pending_;
      arrived_ = 0;
      ++round_;
      ++rounds;
      done_.notify_all();
    } else {
      done_.wait(lock, [&] { return round_ != round; });
    }
    for (std::size_t i = 0; i < tensors.size(); ++i) tensors[i].copy_(result_[i]);
  }
  std::int64_t rounds = 0;

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  int arrived_ = 0;
  std::int64_t round_ = 0;
  std::vector<at::Tensor> pending_, result_;
};

class ThreadRank final : public Collectives {
 public:
  explicit ThreadRank(ThreadWorld& world) : world_(world) {}
  int world_size() const override { return 2; }
  void all_reduce_sum(const std::vector<at::Tensor>& tensors) override {
    world_.all_reduce_sum(tensors);
  }

 private:
  ThreadWorld& world_;
};

std::shared_ptr<MarginHead> ranked_head(const std::string& name, Collectives& ranks) {
  auto head = step_plugins()
                  .get(PluginKind::head, name)
                  .entry.head(HeadArgs{options_of("head '" + name + "'"), 4, 5, &ranks});
  head->to(at::kDouble);
  return head;
}

Matrix rows(const Matrix& m, std::size_t from, std::size_t to) {
  return Matrix(m.begin() + static_cast<std::ptrdiff_t>(from),
                m.begin() + static_cast<std::ptrdiff_t>(to));
}
Labels rows(const Labels& m, std::size_t from, std::size_t to) {
  return Labels(m.begin() + static_cast<std::ptrdiff_t>(from),
                m.begin() + static_cast<std::ptrdiff_t>(to));
}

}  // namespace

CATCH_TEST_CASE(
    "over two ranks with unequal shares, CurricularFace's t and AdaCos's s (and the logits) are "
    "those of one process on the whole batch") {
  const Batch b = fixed_batch();
  for (const std::string name : {"curricularface", "adacos"}) {
    const std::string state = name == "adacos" ? "scale" : "t";
    for (std::size_t split : {std::size_t{2}, std::size_t{3}}) {  // shares 2 + 4 and 3 + 3
      for (const Labels& y : {b.y, Labels{1, 2, 3, 4, 0, 1}}) {
        CATCH_CAPTURE(name, split, y[0]);
        auto one = head_plugin(name, 5, 4);
        ThreadWorld world;
        ThreadRank rank0(world), rank1(world);
        auto h0 = ranked_head(name, rank0), h1 = ranked_head(name, rank1);
        for (int step = 0; step < 3; ++step) {
          CATCH_CAPTURE(step);
          HeadPass whole = pass_of(*one, b.x, b.w, y);
          at::Tensor z0, z1;
          std::thread other(
              [&] { z1 = pass_of(*h1, rows(b.x, split, 6), b.w, rows(y, split, 6)).logits; });
          z0 = pass_of(*h0, rows(b.x, 0, split), b.w, rows(y, 0, split)).logits;
          other.join();
          CATCH_CHECK(buffer(*h0, state) ==
                      catch_compat::Approx(buffer(*one, state)).epsilon(1e-13));
          CATCH_CHECK(buffer(*h1, state) == buffer(*h0, state));
          CATCH_CHECK(max_abs_diff(at::cat({z0, z1}), whole.logits) < 1e-10);
        }
        CATCH_CHECK(world.rounds > 0);
      }
    }
  }
}

namespace {

// Every epoch's loss, loss at w + ε and training accuracy of each setup in a results folder.
std::string metrics_of(const std::string& folder) {
  const std::string script =
      "import h5py,glob,sys\n"
      "for p in sorted(glob.glob(sys.argv[1]+'/*.h5')):\n"
      "  f=h5py.File(p,'r')\n"
      "  for k in ('loss','loss_perturbed','train_accuracy'):\n"
      "    print(f.attrs['setup'],k,' '.join('%.6e'%v for v in f['metrics'][k][()]))\n";
  auto r = shell("'" + std::string(FLATFACE_PYTHON) + "' -c \"" + script + "\" " + folder);
  CATCH_REQUIRE(r.code == 0);
  return r.out;
}

}  // namespace

CATCH_TEST_CASE(
    "flatface run --nproc 2 trains CurricularFace and AdaCos with SAM as one process does") {
  TempDir dir("heads-more-nproc");
  auto grid = [&](const std::string& output) {
    TinyGrid g = tiny_toy_grid();  // BN-free: two ranks take one process's steps exactly
    g.name = "heads-dp";
    g.output = output;
    g.train = R"({ plugin = "test-toy-data", classes = 4, images = 24 })";
    g.epochs = 2;
    g.batch_size = 6;  // rows 3 + 3 on two ranks
    g.train_keys = {"lr = 0.05"};
    g.setups = {{"curricularface", R"({ plugin = "curricularface", s = 8.0 })",
                 R"({ plugin = "sam", rho = 0.1 })"},
                {"adacos", R"({ plugin = "adacos" })", R"({ plugin = "sam", rho = 0.1 })"}};
    g.extra_tables =
        "[plugins]\npaths = [\"" + std::string(FLATFACE_TEST_PLUGIN_DIR) + "/good\"]\n";
    return tiny_grid(g);
  };
  auto a = run_cli("run " + dir.write("one.toml", grid(dir / "one")) + " --threads 1");
  CATCH_REQUIRE(a.code == 0);
  auto b = run_cli("run " + dir.write("two.toml", grid(dir / "two")) + " --threads 1 --nproc 2");
  CATCH_INFO(b.out);
  CATCH_REQUIRE(b.code == 0);
  CATCH_CHECK_THAT(b.out, catch_compat::Contains("rank 0 of 2"));
  // Equal to float32 rounding: the numbers printed to 7 digits agree.
  const std::string one = metrics_of(dir / "one"), two = metrics_of(dir / "two");
  CATCH_CHECK(contains(one, "curricularface loss "));
  CATCH_CHECK(contains(one, "adacos loss_perturbed "));
  std::istringstream x(one), y(two);
  std::string word_x, word_y;
  while (x >> word_x) {
    CATCH_REQUIRE(y >> word_y);
    if (word_x == word_y) continue;
    CATCH_CHECK(std::stod(word_x) == catch_compat::Approx(std::stod(word_y)).epsilon(1e-5));
  }
}

// ---- training with every strategy, state through a file ----

namespace {

at::Tensor train_x(int step) {
  at::Tensor base = doubles(
      {0.3, -1.2, 0.5,  0.9,  -0.1, 1.1,  0.4,  -0.7, 0.2,  0.6,  -0.5, 0.8,  1.3,  -0.9, 0.05,
       0.7, 0.1,  -0.3, -1.0, 0.45, -0.8, 0.25, 0.9,  0.35, -0.6, 0.15, -0.4, 0.65, 1.2,  -0.2},
      {6, 5});
  return base + 0.1 * step;
}
at::Tensor train_y() {
  return longs({0, 2, 1, 1, 0, 2});
}

// A Linear+BN backbone (5 → 4), the head under test (3 classes) and momentum SGD, in float64.
struct Rig {
  bool seeded = (torch::manual_seed(20261207), true);
  std::shared_ptr<LinearBnBackbone> backbone = std::make_shared<LinearBnBackbone>(5, 4);
  std::shared_ptr<MarginHead> head;
  std::unique_ptr<torch::optim::SGD> optimizer;
  std::unique_ptr<TrainStep> step;
  explicit Rig(const std::string& name) : head(head_plugin(name, 3, 4)) {
    backbone->to(at::kDouble);
    TrainSettings t;
    t.lr = 0.1;
    optimizer = make_sgd(*backbone, *head, t);
    step = std::make_unique<TrainStep>(backbone, head, *optimizer, TrainStepOptions{});
  }
};

const char* const kHeads[] = {"curricularface", "adacos", "mv-softmax", "circle",
                              "combined-margin"};

}  // namespace

CATCH_TEST_CASE(
    "every new head trains with none, sam and aace; its statistics move once per step, from the "
    "first pass") {
  for (const std::string name : kHeads) {
    const std::string state = name == "adacos" ? "scale" : name == "curricularface" ? "t" : "";
    std::map<std::string, double> after_one_step;
    for (const std::string perturbation : {"none", "sam", "aace"}) {
      CATCH_CAPTURE(name, perturbation);
      Rig rig(name);
      auto strategy_ =
          strategy(perturbation, perturbation == "none"
                                     ? std::map<std::string, Options::Value>{}
                                     : std::map<std::string, Options::Value>{{"rho", num(0.05)}});
      auto w0 = clones(trainable(*rig.backbone, *rig.head));
      for (int k = 0; k < 4; ++k) {
        StepStats s = rig.step->run(*strategy_, train_x(k), train_y());
        CATCH_CHECK(std::isfinite(s.loss));
        CATCH_CHECK(s.second_pass == (perturbation != "none"));
        if (s.loss_perturbed) CATCH_CHECK(std::isfinite(*s.loss_perturbed));
        if (k == 0 && !state.empty()) after_one_step[perturbation] = buffer(*rig.head, state);
      }
      auto w = trainable(*rig.backbone, *rig.head);
      double moved = 0;
      for (std::size_t i = 0; i < w.size(); ++i) moved += (w[i] - w0[i]).abs().sum().item<double>();
      CATCH_CHECK(moved > 0);
    }
    // Each strategy's step starts with the same first pass at the same weights: the statistics
    // after one step are the same, whatever further passes the step made.
    if (!state.empty()) {
      CATCH_CAPTURE(name);
      CATCH_CHECK(after_one_step["sam"] == after_one_step["none"]);
      CATCH_CHECK(after_one_step["aace"] == after_one_step["none"]);
    }
  }
}

CATCH_TEST_CASE("the statistics after one step are those of the first pass, by the formula") {
  Rig rig("curricularface");
  Rig twin("curricularface");
  double t = 0;
  {
    at::NoGradGuard no_grad;
    at::Tensor c = twin.head->cosine(twin.backbone->forward(train_x(0)));
    Matrix cos;
    for (std::int64_t i = 0; i < c.size(0); ++i) {
      cos.emplace_back();
      for (std::int64_t j = 0; j < c.size(1); ++j) cos.back().push_back(c[i][j].item<double>());
    }
    curricularface(cos, {0, 2, 1, 1, 0, 2}, 64, 0.5, t, true);
  }
  auto sam = strategy("sam", {{"rho", num(0.05)}});
  rig.step->run(*sam, train_x(0), train_y());
  CATCH_CHECK(buffer(*rig.head, "t") == catch_compat::Approx(t).epsilon(1e-13));
}

CATCH_TEST_CASE(
    "every new head's state survives a state_dict file, and training goes on the same") {
  TempDir dir("heads-more");
  for (const std::string name : kHeads) {
    CATCH_CAPTURE(name);
    Rig rig(name);
    auto sam = strategy("sam", {{"rho", num(0.05)}});
    for (int k = 0; k < 2; ++k) rig.step->run(*sam, train_x(k), train_y());
    const std::string file = dir / (name + ".pt");
    save_tensor_dict(file, state_dict(*rig.head));
    auto fresh = head_plugin(name, 3, 4);
    load_state_dict(*fresh, load_tensor_dict(file), file);
    auto a = rig.head->named_buffers(), b = fresh->named_buffers();
    CATCH_CHECK(a.size() == b.size());
    for (const auto& e : a) CATCH_CHECK(at::equal(e.value(), b[e.key()]));
    // The next step's logits (and the statistics they move) are the same from the file.
    at::NoGradGuard no_grad;
    at::Tensor emb = rig.backbone->forward(train_x(2));
    at::Tensor z = rig.head->logits(emb, train_y());
    at::Tensor z_fresh = fresh->logits(emb, train_y());
    CATCH_CHECK(at::equal(z, z_fresh));
    for (const auto& e : a) CATCH_CHECK(at::equal(e.value(), b[e.key()]));
  }
  // The statistics are in the file under their names.
  Rig rig("adacos");
  CATCH_CHECK(state_dict(*rig.head).contains("scale"));
  Rig curricular("curricularface");
  CATCH_CHECK(state_dict(*curricular.head).contains("t"));
}

// ---- options ----

CATCH_TEST_CASE("the new heads reject unknown keys and values out of range, naming the key") {
  auto error = [](const std::string& name, const std::map<std::string, Options::Value>& values,
                  std::int64_t classes = 5) {
    return config_error([&] {
      flatface::make_head(step_plugins(),
                          PluginRef{name, options_of("head '" + name + "'", values)}, 4, classes);
    });
  };
  using catch_compat::Contains;
  CATCH_CHECK_THAT(error("curricularface", {{"m", num(3.2)}}), Contains("m must be < pi"));
  CATCH_CHECK_THAT(error("curricularface", {{"t_alpha", num(1.5)}}),
                   Contains("t_alpha must be in [0, 1]"));
  CATCH_CHECK_THAT(error("curricularface", {{"alpha", num(0.1)}}), Contains("unknown key 'alpha'"));
  CATCH_CHECK_THAT(error("adacos", {}, 2), Contains("needs at least 3 classes"));
  CATCH_CHECK_THAT(error("adacos", {{"s", num(30.0)}}), Contains("unknown key 's'"));
  CATCH_CHECK_THAT(error("mv-softmax", {{"margin", text("cos")}}), Contains("margin"));
  CATCH_CHECK_THAT(error("mv-softmax", {{"t", num(-0.1)}}), Contains("t must be >= 0"));
  CATCH_CHECK_THAT(error("circle", {{"gamma", num(0.0)}}), Contains("gamma must be > 0"));
  CATCH_CHECK_THAT(error("combined-margin", {{"m2", num(3.5)}}), Contains("m2 must be < pi"));
  CATCH_CHECK_THAT(error("combined-margin", {{"m1", num(0.0)}}), Contains("m1 must be > 0"));
  CATCH_CHECK(error("mv-softmax", {{"margin", text("arc")}, {"m", num(0.5)}}).empty());
}
