// Options: the typed key/value table every plugin receives, and its error messages.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "catch_compat.hpp"
#include "flatface/options.hpp"
#include "experiment/number_text.hpp"
#include "test_support.hpp"

using flatface::ConfigError;
using flatface::Options;
using flatface::SourcePos;
using flatface::testing::config_error;

namespace {

// A table as the experiment parser would build it: each value remembers where it was written.
Options sam_table() {
  Options o("perturbation 'sam'", {"x.toml", 12, 16});
  o.set("rho", {0.05, {"x.toml", 12, 34}});
  o.set("adaptive", {true, {"x.toml", 12, 45}});
  o.set("steps", {std::int64_t{3}, {"x.toml", 12, 60}});
  o.set("mode", {std::string("global"), {"x.toml", 13, 1}});
  o.set("list", {std::vector<Options::Scalar>{std::int64_t{1}, 2.5}, {"x.toml", 14, 1}});
  return o;
}

}  // namespace

CATCH_TEST_CASE("a source position prints as file:line:col, or less when less is known") {
  CATCH_CHECK(SourcePos{"x.toml", 3, 7}.str() == "x.toml:3:7");
  CATCH_CHECK(SourcePos{"x.toml", 0, 0}.str() == "x.toml");
  CATCH_CHECK(SourcePos{}.str() == "<input>");
}

CATCH_TEST_CASE("typed getters return the written value, or the fallback when the key is absent") {
  Options o = sam_table();
  CATCH_CHECK(o.get_double("rho", 0.1) == 0.05);
  CATCH_CHECK(o.get_bool("adaptive", false) == true);
  CATCH_CHECK(o.get_int("steps", 1) == 3);
  CATCH_CHECK(o.get_string("mode", "x") == "global");
  CATCH_CHECK(o.get_double("missing", 0.25) == 0.25);
  CATCH_CHECK(o.get_choice("missing_choice", "a", {"a", "b"}) == "a");
}

CATCH_TEST_CASE("an integer is accepted where a number is expected, not the other way round") {
  Options o = sam_table();
  CATCH_CHECK(o.get_double("steps", 0) == 3.0);
  CATCH_CHECK(config_error([&] { o.get_int("rho", 0); }) ==
              "x.toml:12:34: key 'rho' for perturbation 'sam' must be an integer");
}

CATCH_TEST_CASE("a value of the wrong type names its position, key, owner and expected type") {
  Options o = sam_table();
  CATCH_CHECK(config_error([&] { o.get_bool("mode", false); }) ==
              "x.toml:13:1: key 'mode' for perturbation 'sam' must be a boolean");
  CATCH_CHECK(config_error([&] { o.get_string("rho", ""); }) ==
              "x.toml:12:34: key 'rho' for perturbation 'sam' must be a string");
  CATCH_CHECK(config_error([&] { o.get_double("adaptive", 0); }) ==
              "x.toml:12:45: key 'adaptive' for perturbation 'sam' must be a number");
  CATCH_CHECK(config_error([&] { o.get_double("list", 0); }) ==
              "x.toml:14:1: key 'list' for perturbation 'sam' must be a number");
}

CATCH_TEST_CASE("list getters take a list, or a single value as a list of one") {
  Options o = sam_table();
  CATCH_CHECK(o.get_doubles("list", {}) == std::vector<double>{1.0, 2.5});
  CATCH_CHECK(o.get_doubles("rho", {}) == std::vector<double>{0.05});
  CATCH_CHECK(o.get_strings("mode", {}) == std::vector<std::string>{"global"});
  CATCH_CHECK(o.get_ints("absent", {4, 5}) == std::vector<std::int64_t>{4, 5});
  CATCH_CHECK(config_error([&] { o.get_ints("list", {}); }) ==
              "x.toml:14:1: key 'list' for perturbation 'sam' must be an integer or a list of "
              "integers");
}

CATCH_TEST_CASE("a choice outside the allowed set lists the allowed values") {
  Options o = sam_table();
  CATCH_CHECK(config_error([&] {
                o.get_choice("mode", "global", {"layer", "filter"});
              }) ==
              "x.toml:13:1: key 'mode' for perturbation 'sam' is 'global'; expected one of: "
              "layer, filter");
}

CATCH_TEST_CASE("a required key that is missing names the owner and the table's position") {
  Options o = sam_table();
  CATCH_CHECK(config_error([&] { o.require_string("path"); }) ==
              "x.toml:12:16: missing key 'path' for perturbation 'sam'");
}

CATCH_TEST_CASE("a key nobody read is an error listing the keys that were asked for") {
  Options o("perturbation 'sam'", {"x.toml", 12, 16});
  o.set("rhoo", {0.05, {"x.toml", 12, 34}});
  o.consume("plugin");
  o.get_double("rho", 0.1);
  o.get_bool("adaptive", false);
  CATCH_CHECK(config_error([&] { o.check_all_used(); }) ==
              "x.toml:12:34: unknown key 'rhoo' for perturbation 'sam' (known: adaptive, plugin, "
              "rho)");
}

CATCH_TEST_CASE("a plugin that takes no options says so when given one") {
  Options o("perturbation 'none'", {"x.toml", 5, 16});
  o.set("rho", {0.1, {"x.toml", 5, 40}});
  CATCH_CHECK(config_error([&] { o.check_all_used(); }) ==
              "x.toml:5:40: unknown key 'rho' for perturbation 'none' (it takes no options)");
}

CATCH_TEST_CASE("when every key is read the check passes") {
  Options o = sam_table();
  for (const auto& k : o.keys()) o.consume(k);
  CATCH_CHECK_NOTHROW(o.check_all_used());
}

CATCH_TEST_CASE("a fresh copy has the same values but forgets which were read") {
  Options o = sam_table();
  for (const auto& k : o.keys()) o.consume(k);
  Options copy = o.fresh_copy();
  CATCH_CHECK(copy.get_double("rho", 0) == 0.05);
  CATCH_CHECK_THROWS_AS(copy.check_all_used(), ConfigError);
  CATCH_CHECK_NOTHROW(o.check_all_used());  // the original's tracking is untouched
}

CATCH_TEST_CASE("the canonical text is sorted by key, with numbers in their shortest exact form") {
  Options a("a", {});
  a.set("s", {64.0, {}});
  a.set("m", {0.1, {}});
  a.set("name", {std::string("x"), {}});
  a.set("l", {std::vector<Options::Scalar>{std::int64_t{1}, false}, {}});
  Options b("b", {});  // same values, other order and positions
  b.set("name", {std::string("x"), {"y.toml", 1, 1}});
  b.set("l", {std::vector<Options::Scalar>{std::int64_t{1}, false}, {}});
  b.set("m", {0.1, {}});
  b.set("s", {64.0, {}});
  CATCH_CHECK(a.canonical() == b.canonical());
  // 0.1 is the shortest text that reads back as the double nearest to 0.1.
  CATCH_CHECK(a.canonical() == "{l=[1,false],m=0.1,name=\"x\",s=64}");
  b.set("m", {0.1 + 1e-15, {}});
  CATCH_CHECK(a.canonical() != b.canonical());
  // 0.1 + 1e-15 is a different double, so its shortest form needs 16 digits.
  CATCH_CHECK(b.canonical() == "{l=[1,false],m=0.100000000000001,name=\"x\",s=64}");
}

CATCH_TEST_CASE("the text run ids hash keeps numbers at 17 significant digits, as it always did") {
  Options a("a", {});
  a.set("h", {0.333, {}});
  a.set("s", {64.0, {}});
  // printf("%.17g", 0.333) == "0.33300000000000002": the double nearest 0.333 is just above it.
  CATCH_CHECK(a.id_text() == "{h=0.33300000000000002,s=64}");
  CATCH_CHECK(a.canonical() == "{h=0.333,s=64}");
}

CATCH_TEST_CASE("numbers are written in the shortest form that reads back to the same double") {
  // Expected texts by hand: the fewest significant digits that strtod() rounds back to the value.
  CATCH_CHECK(flatface::shortest_text(0.333) == "0.333");
  CATCH_CHECK(flatface::shortest_text(0.1) == "0.1");
  CATCH_CHECK(flatface::shortest_text(64.0) == "64");
  CATCH_CHECK(flatface::shortest_text(1e-300) == "1e-300");
  CATCH_CHECK(flatface::shortest_text(5e-324) == "5e-324");  // the smallest subnormal
  CATCH_CHECK(flatface::shortest_text(1 / 3.0) == "0.3333333333333333");
  CATCH_CHECK(flatface::shortest_text(9007199254740992.0) == "9007199254740992");  // 2^53
  CATCH_CHECK(flatface::shortest_text(1e22) == "1e+22");
  CATCH_CHECK(flatface::shortest_text(-0.5) == "-0.5");
  CATCH_CHECK(flatface::shortest_text(std::nan("")) == "nan");
  CATCH_CHECK(flatface::shortest_text(-HUGE_VAL) == "-inf");
  // Exact round trip, also for doubles drawn across the whole range by their bit patterns.
  std::vector<double> values{0.1,
                             1e-300,
                             5e-324,
                             1 / 3.0,
                             9007199254740993.0,
                             1.7976931348623157e308,
                             2.2250738585072014e-308,
                             123456789012345678.0};
  std::uint64_t bits = 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < 1000; ++i) {
    bits = bits * 6364136223846793005ull + 1442695040888963407ull;
    double v;
    std::memcpy(&v, &bits, sizeof v);
    if (std::isfinite(v)) values.push_back(v);
  }
  for (double v : values) {
    const std::string text = flatface::shortest_text(v);
    CATCH_CAPTURE(text);
    double back = std::strtod(text.c_str(), nullptr);
    CATCH_CHECK(std::memcmp(&back, &v, sizeof v) == 0);
  }
}
