// glog (pulled in by Debian's libtorch) defines CHECK; CATCH_CONFIG_PREFIX_ALL keeps Catch2's apart.
#define CATCH_CONFIG_MAIN
#define CATCH_CONFIG_PREFIX_ALL
#include <catch2/catch.hpp>
