// Catch2 v2 (Debian 12) and v3 (Debian 13) behind one include. Tests use the CATCH_-prefixed
// macros (CATCH_CONFIG_PREFIX_ALL, set by CMake: glog, which libtorch pulls in, defines CHECK) and
// take Approx and the string matchers from catch_compat.
#pragma once

#include <string>

#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

namespace catch_compat {
using Catch::Approx;
// v3 renamed the substring matcher; v2's name reads better beside CATCH_CHECK_THAT.
inline auto Contains(const std::string& text) {
  return Catch::Matchers::ContainsSubstring(text);
}
inline auto StartsWith(const std::string& text) {
  return Catch::Matchers::StartsWith(text);
}
}  // namespace catch_compat
#else
#include <catch2/catch.hpp>

namespace catch_compat {
using Catch::Detail::Approx;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
}  // namespace catch_compat
#endif
