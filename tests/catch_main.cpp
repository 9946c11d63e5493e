// glog (pulled in by Debian's libtorch) defines CHECK; CATCH_CONFIG_PREFIX_ALL (set by CMake for every
// test) keeps Catch2's macros apart.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
