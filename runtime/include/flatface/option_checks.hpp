// Typed option reads with a range check, for plugin constructors: a value out of range is a
// ConfigError naming the key's file:line:col, the owner and the value, like every other option
// error.
#pragma once

#include <string>

#include "flatface/options.hpp"

namespace flatface {

// A double that must be > 0 (a scale s, a temperature); `fallback` when the key is absent.
inline double positive_option(const Options& options, const std::string& key, double fallback) {
  double v = options.get_double(key, fallback);
  if (!(v > 0)) {
    throw ConfigError(options.pos_of(key).str() + ": " + key + " must be > 0 for " +
                      options.what() + " (got " + std::to_string(v) + ")");
  }
  return v;
}

// A double that must be >= 0 (a margin m, a radius ρ); `fallback` when the key is absent.
inline double nonnegative_option(const Options& options, const std::string& key, double fallback) {
  double v = options.get_double(key, fallback);
  if (!(v >= 0)) {
    throw ConfigError(options.pos_of(key).str() + ": " + key + " must be >= 0 for " +
                      options.what() + " (got " + std::to_string(v) + ")");
  }
  return v;
}

}  // namespace flatface
