// Procedural face-like images: an identity is a handful of structural parameters (face shape,
// skin, hair, eyes, brows, nose, mouth, a stripe texture, a mark); a sample is that identity
// drawn under random nuisance (pose, scale, lighting, colour cast, noise, occlusion, expression).
// Everything is a pure function of 64-bit keys, so images never need to be stored.
#pragma once

#include <cstdint>

#include "flatface/dataset.hpp"

namespace flatface::synthetic {

struct Colour {
  double r = 0, g = 0, b = 0;  // 0..1
};

// Lengths and positions in face coordinates: the face spans about [-1, 1] in both directions,
// y grows downwards.
struct Identity {
  double face_w, face_h;
  Colour skin, hair;
  double hairline;
  double eye_x, eye_y, eye_w, eye_h;
  Colour iris;
  double brow_y, brow_tilt, brow_thickness;
  Colour brow;
  double nose_y, nose_len, nose_w;
  double mouth_y, mouth_w, mouth_h;
  Colour lips;
  double stripe_freq, stripe_angle, stripe_phase, stripe_amp;
  double mark_x, mark_y, mark_r;
  Colour mark;
};

struct Nuisance {
  double shift_x = 0, shift_y = 0, scale = 1, angle = 0;  // similarity transform of the face
  double gain = 1, light_angle = 0, light_amp = 0;        // illumination: gain and a gradient
  Colour cast{1, 1, 1};                                   // per-channel colour cast
  Colour background{0.5, 0.5, 0.5};
  double expression = 0;   // mouth opening and eye squint
  double noise_sigma = 0;  // Gaussian pixel noise, 0..1 scale
  bool occluded = false;
  double occ_x0 = 0, occ_y0 = 0, occ_x1 = 0, occ_y1 = 0;  // in image coordinates [-1, 1]
  Colour occ_colour;
  std::uint64_t noise_key = 0;
};

// splitmix64 finaliser: a well-mixed 64-bit hash.
std::uint64_t mix(std::uint64_t x);
inline std::uint64_t key(std::uint64_t a, std::uint64_t b) {
  return mix(mix(a) ^ b);
}

// `spread` scales how far each parameter may move from the mean face (0: all identical).
Identity make_identity(std::uint64_t key, double spread);
// `amount` scales every nuisance (0: the identity's template, exactly).
Nuisance make_nuisance(std::uint64_t key, double amount);
Image render(const Identity& id, const Nuisance& n, int side);

}  // namespace flatface::synthetic
