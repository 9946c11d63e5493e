// `flatface bench`: its order statistics by hand, and one short run of the command on a tiny real
// model whose JSON must describe every setup, the loader and evaluation.
#include <algorithm>
#include <cmath>

#include "bench/bench.hpp"
#include "catch_compat.hpp"
#include "cli_test_support.hpp"
#include "json_file.hpp"
#include "tiny_grid.hpp"

using namespace flatface;
using namespace flatface::testing;
using catch_compat::Approx;

namespace {
constexpr std::size_t first = 0, second = 1;  // JSON array indices
}  // namespace

CATCH_TEST_CASE("percentiles interpolate linearly between order statistics") {
  // Sorted 1, 2, 3, 4: rank q/100 * 3.
  const std::vector<double> v{4, 1, 3, 2};
  CATCH_CHECK(percentile(v, 50) == Approx(2.5));  // rank 1.5
  CATCH_CHECK(percentile(v, 10) == Approx(1.3));  // rank 0.3
  CATCH_CHECK(percentile(v, 90) == Approx(3.7));  // rank 2.7
  CATCH_CHECK(percentile(v, 0) == 1);
  CATCH_CHECK(percentile(v, 100) == 4);
  TimingSummary s = summarize({5, 7, 6});
  CATCH_CHECK(s.n == 3);
  CATCH_CHECK(s.median == 6);
  CATCH_CHECK(s.min == 5);
  CATCH_CHECK(s.max == 7);
  CATCH_CHECK(s.mean == 6);
  CATCH_CHECK(summarize({1, 2, 6}).mean == 3);
}

CATCH_TEST_CASE("the amortised step weights each kind of step's median by its share") {
  // One-pass steps 10, 12, 11 (median 11), two-pass steps 30, 50 (median 40): 3/5 11 + 2/5 40.
  CATCH_CHECK(amortised_ms({10, 30, 12, 11, 50}, {false, true, false, false, true}) ==
              Approx(0.6 * 11 + 0.4 * 40));
  // Steps of one kind: their median, an outlier notwithstanding.
  CATCH_CHECK(amortised_ms({5, 6, 700}, {true, true, true}) == Approx(6));
  CATCH_CHECK(amortised_ms({5, 6, 700}, {false, false, false}) == Approx(6));
  CATCH_CHECK(std::isnan(percentile({}, 50)));
}

CATCH_TEST_CASE("flatface bench times every setup, the loader and evaluation and writes JSON") {
  TempDir tmp("bench");
  TinyGrid g;
  g.name = "bench-test";
  g.train = R"({ plugin = "synthetic", identities = 4, images_per_identity = 8, seed = 0 })";
  g.eval = {R"({ name = "S", plugin = "synthetic", identities = 4, images_per_identity = 8, )"
            R"(seed = 0, pairs = 40, verification_identities = 4 })"};
  g.epochs.reset();
  g.batch_size = 8;
  const std::string arcface = R"({ plugin = "arcface", s = 32.0 })";
  g.setups = {{"plain", arcface},
              {"flat", arcface, R"({ plugin = "sam", rho = [0.07, 0.2] })"},
              {"look", arcface, R"({ plugin = "looksam", rho = 0.05, k = 2 })"}};
  const std::string toml = tmp.write("bench.toml", tiny_grid(g));

  const std::string json = (tmp.path / "bench.json").string();
  Result r = run_cli("bench '" + toml +
                     "' --classes 11 --steps 3 --warmup 1 --loader-batches 4 "
                     "--loader-threads 1,2 --eval-repeats 1 --json '" +
                     json + "'");
  CATCH_REQUIRE(r.code == 0);
  CATCH_CHECK(contains(r.out, "plain"));
  CATCH_CHECK(contains(r.out, "peak RSS"));

  auto doc = load_json(json);
  const auto& cfg = doc.at("config");
  CATCH_CHECK(cfg.at("classes").get<double>() == 11);
  CATCH_CHECK(cfg.at("batch_size").get<double>() == 8);
  CATCH_CHECK(cfg.at("threads").get<double>() == 1);
  CATCH_CHECK(cfg.at("backbone").at("width").get<double>() == 4);
  CATCH_CHECK(cfg.at("setups").at(second).at("perturbation").at("rho").get<double>() ==
              Approx(0.07));  // the first rho
  CATCH_CHECK(cfg.at("setups").at(second).at("head").at("s").get<double>() == 32);

  const auto& steps = doc.at("steps");
  CATCH_REQUIRE(steps.size() == 3);
  CATCH_CHECK(steps.at(first).at("two_pass").get<bool>() == false);
  CATCH_CHECK(steps.at(second).at("two_pass").get<bool>() == true);
  for (std::size_t i = 0; i < 3; ++i) {
    CATCH_CHECK(steps.at(i).at("samples_ms").size() == 3);
    CATCH_CHECK(steps.at(i).at("median_ms").get<double>() > 0);
    CATCH_CHECK(std::isfinite(steps.at(i).at("loss_last").get<double>()));
    // img/s = batch / median
    CATCH_CHECK(steps.at(i).at("images_per_second").get<double>() ==
                Approx(8 / (steps.at(i).at("median_ms").get<double>() / 1e3)));
  }
  CATCH_CHECK(steps.at(first).at("ratio_to_plain").get<double>() == 1);
  CATCH_CHECK(steps.at(second).at("ratio_to_plain").get<double>() ==
              Approx(steps.at(second).at("median_ms").get<double>() /
                     steps.at(first).at("median_ms").get<double>())
                  .epsilon(1e-5));
  // The amortised cost: each kind of step's median weighted by its share, against the plain step.
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  };
  for (std::size_t i = 0; i < 3; ++i) {
    double sum = 0;
    std::vector<double> one, two;
    for (std::size_t j = 0; j < 3; ++j) {
      const double ms = steps.at(i).at("samples_ms").at(j).get<double>();
      sum += ms;
      (steps.at(i).at("samples_second_pass").at(j).get<bool>() ? two : one).push_back(ms);
    }
    CATCH_CHECK(steps.at(i).at("mean_ms").get<double>() == Approx(sum / 3).epsilon(1e-5));
    double amortised = 0;
    if (!one.empty()) amortised += one.size() / 3.0 * median(one);
    if (!two.empty()) amortised += two.size() / 3.0 * median(two);
    CATCH_CHECK(steps.at(i).at("amortised_ms").get<double>() == Approx(amortised).epsilon(1e-5));
    CATCH_CHECK(steps.at(i).at("amortised_ratio").get<double>() ==
                Approx(amortised / steps.at(first).at("amortised_ms").get<double>()).epsilon(1e-5));
  }
  CATCH_CHECK(steps.at(first).at("amortised_ms").get<double>() ==
              Approx(steps.at(first).at("median_ms").get<double>()));
  CATCH_CHECK(steps.at(first).at("second_pass_fraction").get<double>() == 0);
  CATCH_CHECK(steps.at(second).at("second_pass_fraction").get<double>() == 1);
  // LookSAM, k = 2, over rounds 0-3 (round 0 warms up): a full step at round 2 of the timed 1-3.
  const std::size_t third = 2;
  CATCH_CHECK(steps.at(third).at("second_pass_fraction").get<double>() ==
              Approx(1.0 / 3).epsilon(1e-5));

  const auto& loader = doc.at("loader");
  CATCH_REQUIRE(loader.size() == 2);  // one training set, threads 1 and 2
  CATCH_CHECK(loader.at(first).at("threads").get<double>() == 1);
  CATCH_CHECK(loader.at(second).at("threads").get<double>() == 2);
  CATCH_CHECK(loader.at(first).at("images").get<double>() == 4 * 8);  // 4 batches of 8
  const auto& eval = doc.at("eval");
  CATCH_REQUIRE(eval.size() == 1);
  CATCH_CHECK(eval.at(first).at("pairs").get<double>() == 40);
  CATCH_CHECK(doc.at("peak_rss_mb").get<double>() > 0);
  // One λ_max estimate of the plain setup, in its own training steps: seconds / median step.
  const auto& lambda = doc.at("lambda_max");
  CATCH_CHECK(lambda.at("setup").get<std::string>() == "plain");
  CATCH_CHECK(lambda.at("products").get<double>() >= 1);
  CATCH_CHECK(lambda.at("products").get<double>() <= 100);
  CATCH_CHECK(
      lambda.at("training_steps").get<double>() ==
      Approx(1e3 * lambda.at("seconds").get<double>() / lambda.at("step_median_ms").get<double>())
          .epsilon(1e-4));
  CATCH_CHECK(lambda.at("product_ms").get<double>() ==
              Approx(1e3 * lambda.at("seconds").get<double>() / lambda.at("products").get<double>())
                  .epsilon(1e-4));
}

CATCH_TEST_CASE("flatface bench with a setup that does not exist exits 2") {
  TempDir tmp("bench-bad");
  Result r = run_cli("bench '" + std::string(FLATFACE_SOURCE_DIR) +
                     "/experiments/quickstart.toml' --setup NoSuchSetup --skip loader --skip eval");
  CATCH_CHECK(r.code == 2);
  CATCH_CHECK(contains(r.out, "no setup"));
}
