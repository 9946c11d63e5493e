#include "face_renderer.hpp"

#include <algorithm>
#include <cmath>

namespace flatface::synthetic {

std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

namespace {

constexpr double kPi = 3.14159265358979323846;

// A tiny deterministic generator (no std distributions: their output differs between libraries).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() { return mix(state_++); }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double symmetric() { return 2 * uniform() - 1; }                            // [-1, 1)
  double normal() {                                                           // Box-Muller
    double u = std::max(uniform(), 1e-300);
    return std::sqrt(-2 * std::log(u)) * std::cos(2 * kPi * uniform());
  }

 private:
  std::uint64_t state_;
};

double clamp01(double v) {
  return std::min(1.0, std::max(0.0, v));
}

Colour colour(Rng& r, Colour mean, double spread, double range) {
  return {clamp01(mean.r + spread * range * r.symmetric()),
          clamp01(mean.g + spread * range * r.symmetric()),
          clamp01(mean.b + spread * range * r.symmetric())};
}

Colour blend(Colour a, Colour b, double alpha) {
  return {a.r + (b.r - a.r) * alpha, a.g + (b.g - a.g) * alpha, a.b + (b.b - a.b) * alpha};
}

// Anti-aliased coverage of the ellipse ((u-cx)/a)^2 + ((v-cy)/b)^2 < 1; `px` is one pixel's size
// in face coordinates.
double ellipse(double u, double v, double cx, double cy, double a, double b, double px) {
  double du = (u - cx) / a, dv = (v - cy) / b;
  double r = std::sqrt(du * du + dv * dv);
  return clamp01((1 - r) * std::min(a, b) / px + 0.5);
}

}  // namespace

Identity make_identity(std::uint64_t k, double s) {
  Rng r(k);
  Identity id;
  id.face_w = 0.62 + s * 0.10 * r.symmetric();
  id.face_h = 0.80 + s * 0.10 * r.symmetric();
  id.skin = colour(r, {0.70, 0.55, 0.45}, s, 0.25);
  id.hair = colour(r, {0.35, 0.30, 0.25}, s, 0.35);
  id.hairline = -0.45 + s * 0.20 * r.symmetric();
  id.eye_x = 0.27 + s * 0.07 * r.symmetric();
  id.eye_y = -0.15 + s * 0.08 * r.symmetric();
  id.eye_w = 0.12 + s * 0.04 * r.symmetric();
  id.eye_h = 0.07 + s * 0.025 * r.symmetric();
  id.iris = colour(r, {0.35, 0.35, 0.35}, s, 0.35);
  id.brow_y = -0.32 + s * 0.06 * r.symmetric();
  id.brow_tilt = s * 0.25 * r.symmetric();
  id.brow_thickness = 0.035 + s * 0.02 * r.symmetric();
  id.brow = colour(r, {0.30, 0.25, 0.20}, s, 0.25);
  id.nose_y = 0.12 + s * 0.06 * r.symmetric();
  id.nose_len = 0.17 + s * 0.06 * r.symmetric();
  id.nose_w = 0.07 + s * 0.03 * r.symmetric();
  id.mouth_y = 0.45 + s * 0.08 * r.symmetric();
  id.mouth_w = 0.22 + s * 0.08 * r.symmetric();
  id.mouth_h = 0.05 + s * 0.025 * r.symmetric();
  id.lips = colour(r, {0.65, 0.30, 0.30}, s, 0.25);
  id.stripe_freq = 6 + s * 5 * r.symmetric();
  id.stripe_angle = kPi * r.uniform();
  id.stripe_phase = 2 * kPi * r.uniform();
  id.stripe_amp = std::max(0.0, s * 0.10 * (0.5 + 0.5 * r.symmetric()));
  id.mark_x = s * 0.45 * r.symmetric();
  id.mark_y = 0.1 + s * 0.35 * r.symmetric();
  id.mark_r = 0.03 + s * 0.05 * r.uniform();
  id.mark = colour(r, {0.40, 0.30, 0.30}, s, 0.35);
  return id;
}

Nuisance make_nuisance(std::uint64_t k, double a) {
  Rng r(k);
  Nuisance n;
  n.shift_x = a * 0.10 * r.symmetric();
  n.shift_y = a * 0.10 * r.symmetric();
  n.scale = 1 + a * 0.15 * r.symmetric();
  n.angle = a * 0.25 * r.symmetric();  // radians, about +-7 degrees at a = 0.5
  n.gain = 1 + a * 0.5 * r.symmetric();
  n.light_angle = 2 * kPi * r.uniform();
  n.light_amp = a * 0.5 * r.uniform();
  n.cast = {1 + a * 0.2 * r.symmetric(), 1 + a * 0.2 * r.symmetric(), 1 + a * 0.2 * r.symmetric()};
  n.background = colour(r, {0.5, 0.5, 0.5}, std::min(1.0, a), 0.45);
  n.expression = a * r.symmetric();
  n.noise_sigma = a * 0.08 * r.uniform();
  n.occluded = r.uniform() < a * 0.4;
  double w = 0.3 + 0.5 * r.uniform(), h = 0.2 + 0.4 * r.uniform();
  n.occ_x0 = -1 + (2 - w) * r.uniform();
  n.occ_y0 = -1 + (2 - h) * r.uniform();
  n.occ_x1 = n.occ_x0 + w;
  n.occ_y1 = n.occ_y0 + h;
  n.occ_colour = colour(r, {0.5, 0.5, 0.5}, 1, 0.5);
  n.noise_key = r.next();
  return n;
}

// The identity's colour at face coordinates (u, v), under expression `e`.
static Colour face_colour(const Identity& f, double u, double v, double e, double px,
                          Colour background) {
  Colour c = background;
  // Head (hair) behind the face, then the face below the hairline.
  c = blend(c, f.hair, ellipse(u, v, 0, -0.08, f.face_w * 1.12, f.face_h * 1.08, px));
  double face = ellipse(u, v, 0, 0, f.face_w, f.face_h, px);
  double below_hair = clamp01((v - f.hairline) / px + 0.5);
  Colour skin = f.skin;
  double stripe =
      f.stripe_amp *
      std::sin(f.stripe_freq * (u * std::cos(f.stripe_angle) + v * std::sin(f.stripe_angle)) +
               f.stripe_phase);
  skin = {clamp01(skin.r + stripe), clamp01(skin.g + stripe * 0.8), clamp01(skin.b + stripe * 0.6)};
  c = blend(c, skin, face * below_hair);
  // Eyes: white, then the iris; squinting with the expression.
  double eye_h = f.eye_h * (1 - 0.3 * std::max(0.0, e));
  for (double side : {-1.0, 1.0}) {
    double ex = side * f.eye_x;
    c = blend(c, Colour{0.95, 0.95, 0.92}, ellipse(u, v, ex, f.eye_y, f.eye_w, eye_h, px));
    c = blend(c, f.iris, ellipse(u, v, ex, f.eye_y, eye_h * 0.9, eye_h * 0.9, px));
    // Brow: a thin tilted bar above each eye.
    double bu = u - ex, bv = v - (f.brow_y + side * f.brow_tilt * (u - ex));
    c = blend(c, f.brow, ellipse(bu, bv, 0, 0, f.eye_w * 1.2, f.brow_thickness, px));
  }
  Colour shade{f.skin.r * 0.75, f.skin.g * 0.7, f.skin.b * 0.7};
  c = blend(c, shade, ellipse(u, v, 0, f.nose_y, f.nose_w, f.nose_len, px) * 0.8);
  double mouth_h = f.mouth_h * (1 + 0.8 * std::max(0.0, -e));
  c = blend(c, f.lips, ellipse(u, v, 0, f.mouth_y, f.mouth_w * (1 + 0.15 * e), mouth_h, px));
  c = blend(c, f.mark, ellipse(u, v, f.mark_x, f.mark_y, f.mark_r, f.mark_r, px) * face);
  return c;
}

Image render(const Identity& f, const Nuisance& n, int side) {
  Image img;
  img.height = img.width = side;
  img.pixels.resize(static_cast<std::size_t>(side) * side * 3);
  Rng noise(n.noise_key);
  double ca = std::cos(-n.angle), sa = std::sin(-n.angle);
  double px = 2.0 / side / n.scale;
  double lx = std::cos(n.light_angle), ly = std::sin(n.light_angle);
  std::size_t o = 0;
  for (int row = 0; row < side; ++row) {
    for (int col = 0; col < side; ++col) {
      // Image coordinates in [-1, 1], then the inverse similarity transform into the face.
      double x = (col + 0.5) * 2.0 / side - 1, y = (row + 0.5) * 2.0 / side - 1;
      double tx = (x - n.shift_x) / n.scale, ty = (y - n.shift_y) / n.scale;
      double u = ca * tx - sa * ty, v = sa * tx + ca * ty;
      Colour c = face_colour(f, u, v, n.expression, px, n.background);
      if (n.occluded && x >= n.occ_x0 && x < n.occ_x1 && y >= n.occ_y0 && y < n.occ_y1)
        c = n.occ_colour;
      double light = n.gain * (1 + n.light_amp * (x * lx + y * ly));
      double rgb[3] = {c.r * light * n.cast.r, c.g * light * n.cast.g, c.b * light * n.cast.b};
      for (double ch : rgb) {
        double value = ch + (n.noise_sigma > 0 ? n.noise_sigma * noise.normal() : 0.0);
        img.pixels[o++] = static_cast<std::uint8_t>(std::lround(255 * clamp01(value)));
      }
    }
  }
  return img;
}

}  // namespace flatface::synthetic
