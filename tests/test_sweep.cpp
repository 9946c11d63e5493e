// A grid that sweeps a head option, end to end through the `flatface` executable: plan, --only,
// run, the result files (read with h5py) and checkpoints, and the report's rows.
#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "catch_compat.hpp"
#include "cli_test_support.hpp"
#include "json_file.hpp"
#include "tiny_grid.hpp"

using namespace flatface::testing;

namespace {

// AdaFace (h = 0.333, the paper's) at margins 0.3 and 0.5, two seeds: 4 runs of one epoch of a
// narrow IResNet on 64 synthetic images.
std::string margin_grid(const fs::path& output) {
  TinyGrid g;
  g.name = "margins";
  g.seeds = {0, 1};
  g.output = output.string();
  g.train_keys = {"milestones = []", "log_every_steps = 0"};
  g.setups = {{"AdaFace", R"({ plugin = "adaface", s = 64.0, m = 0.4, h = 0.333, t_alpha = 0.01 })",
               R"({ plugin = "none" })", R"({ "head.m" = [0.3, 0.5] })"}};
  return tiny_grid(g);
}

std::size_t count_lines_with(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

}  // namespace

CATCH_TEST_CASE(
    "a sweep of head.m x 2 seeds plans, runs by --only, records its values and "
    "reports one row per margin") {
  TempDir tmp("sweep");
  const fs::path results = tmp.path / "results";
  const std::string file = tmp.write("margins.toml", margin_grid(results));

  Result plan = run_cli("plan '" + file + "' --format json");
  CATCH_INFO(plan.out);
  CATCH_REQUIRE(plan.code == 0);
  // Each margin twice (two seeds), as a number.
  const Json planned = Json::parse(plan.out);
  std::vector<Json> sweeps;
  for (const auto& run : planned.at("runs")) sweeps.push_back(run.at("sweep"));
  CATCH_CHECK(std::count(sweeps.begin(), sweeps.end(), Json{{"head.m", 0.3}}) == 2);
  CATCH_CHECK(std::count(sweeps.begin(), sweeps.end(), Json{{"head.m", 0.5}}) == 2);

  // One margin first: two runs, the other two left for later.
  Result first = run_cli("run '" + file + "' --only head.m=0.3 --no-report");
  CATCH_INFO(first.out);
  CATCH_REQUIRE(first.code == 0);
  CATCH_CHECK(contains(first.out, "AdaFace seed=0 head.m=0.3"));
  CATCH_CHECK(contains(first.out, "AdaFace seed=1 head.m=0.3"));
  CATCH_CHECK_FALSE(contains(first.out, "head.m=0.5"));
  std::vector<fs::path> h5;
  for (const auto& entry : fs::directory_iterator(results))
    if (entry.path().extension() == ".h5") h5.push_back(entry.path());
  CATCH_REQUIRE(h5.size() == 2);

  // What the result file records, read by h5py: the swept value, and the head and the resolved
  // TOML with 0.333 as written (not 0.33300000000000002).
  const std::string py = std::string(FLATFACE_PYTHON) +
                         " -c \"import h5py, sys; a = h5py.File(sys.argv[1], 'r').attrs; "
                         "print(a['sweep.head.m']); print(a['head']); print(a['config_toml'])\" '" +
                         h5[0].string() + "'";
  Result attrs = shell(py);
  CATCH_INFO(attrs.out);
  CATCH_REQUIRE(attrs.code == 0);
  CATCH_CHECK(attrs.out.rfind("0.3\nadaface{h=0.333,m=0.3,plugin=\"adaface\",s=64,t_alpha=0.01}\n",
                              0) == 0);
  CATCH_CHECK(contains(attrs.out, "h = 0.333,"));
  CATCH_CHECK(contains(attrs.out, "sweep = { 'head.m' = [ 0.3, 0.5 ] }"));
  CATCH_CHECK_FALSE(contains(attrs.out, "0.33300000000000002"));
  // The checkpoint keeps the same resolved TOML (a pickled string, stored as it is).
  const std::string ckpt = text_of(results / "checkpoints" / (h5[0].stem().string() + ".ckpt"));
  CATCH_CHECK(contains(ckpt, "h = 0.333,"));
  CATCH_CHECK_FALSE(contains(ckpt, "0.33300000000000002"));

  // The rest of the grid, then the table: one row per margin, averaged over both seeds.
  Result rest = run_cli("run '" + file + "'");
  CATCH_INFO(rest.out);
  CATCH_REQUIRE(rest.code == 0);
  CATCH_CHECK(contains(rest.out, "2 trained, 2 already complete"));
  Result report = run_cli("report '" + results.string() + "'");
  CATCH_INFO(report.out);
  CATCH_REQUIRE(report.code == 0);
  const std::string main_table = report.out.substr(0, report.out.find("Generalization gap"));
  CATCH_CHECK(count_lines_with(main_table, "| AdaFace") == 2);
  CATCH_CHECK(count_lines_with(main_table, "| AdaFace head.m=0.3 |") == 1);
  CATCH_CHECK(count_lines_with(main_table, "| AdaFace head.m=0.5 |") == 1);
  CATCH_CHECK(contains(report.out, "n = 2 seeds per row."));
  CATCH_CHECK(contains(report.out, "head.m sweep"));
}
