// Data-parallel training over c10d (Gloo): two ranks on the global batch take the step one process
// takes (paper eqs. 15-21 with epsilon = "global"), as two step_worker processes started by the
// --nproc launcher show against a third one alone.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <fstream>
#include <string>
#include <vector>

#include "catch_compat.hpp"
#include "distributed/launch_env.hpp"
#include "distributed/local_ranks.hpp"
#include "data/loader.hpp"

using flatface::distributed::first_slurm_host;
using flatface::distributed::launch_from_environment;

namespace {

struct WorkerResult {
  std::vector<double> losses;
  double correct = 0;
  std::vector<double> weights;  // trainable parameters, then the head's buffers
};

WorkerResult read_result(const std::string& path, int steps) {
  std::ifstream f(path, std::ios::binary);
  CATCH_REQUIRE(f.good());
  std::vector<double> all;
  double v;
  while (f.read(reinterpret_cast<char*>(&v), sizeof v)) all.push_back(v);
  CATCH_REQUIRE(all.size() > static_cast<std::size_t>(steps) + 1);
  WorkerResult r;
  r.losses.assign(all.begin(), all.begin() + steps);
  r.correct = all[static_cast<std::size_t>(steps)];
  r.weights.assign(all.begin() + steps + 1, all.end());
  return r;
}

double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  CATCH_REQUIRE(a.size() == b.size());
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

// Runs step_worker with `nproc` ranks (1: one process, no launcher variables) and returns each
// rank's result.
std::vector<WorkerResult> train(int nproc, const std::string& strategy, const std::string& epsilon,
                                const std::string& backbone, const std::string& head,
                                int batch, int steps) {
  const std::string out = "dist-step-" + std::to_string(::getpid()) + "-" + strategy + "-" +
                          epsilon + "-" + backbone + "-" + head + "-" + std::to_string(batch) +
                          "-" + std::to_string(nproc);
  const std::vector<std::string> args{strategy, epsilon, backbone, head, std::to_string(batch),
                                      std::to_string(steps), out};
  CATCH_REQUIRE(flatface::distributed::run_local_ranks(FLATFACE_STEP_WORKER, args, nproc) == 0);
  std::vector<WorkerResult> results;
  for (int r = 0; r < nproc; ++r) {
    const std::string path = out + ".rank" + std::to_string(r) + ".bin";
    results.push_back(read_result(path, steps));
    std::remove(path.c_str());
  }
  return results;
}

// Three SAM steps of `head` on the linear model: two ranks end where one process does, the ranks
// agree exactly, and the steps moved the weights.
void check_sam_on_two_ranks(const std::string& head) {
  auto one = train(1, "sam", "global", "linear", head, 6, 3);
  auto two = train(2, "sam", "global", "linear", head, 6, 3);
  CATCH_CHECK(max_diff(two[0].weights, one[0].weights) < 1e-6);
  CATCH_CHECK(max_diff(two[0].losses, one[0].losses) < 1e-6);
  CATCH_CHECK(max_diff(two[1].weights, two[0].weights) == 0);
  CATCH_CHECK(one[0].losses.front() != one[0].losses.back());
}

}  // namespace

CATCH_TEST_CASE("two Gloo ranks sharing the global batch take the single-process step") {
  // none, SAM and AACE with epsilon = "global" on a BN-free model: after 3 steps every weight,
  // loss and the count of correct samples equal one process's on the whole batch.
  for (const std::string strategy : {"none", "sam", "aace"}) {
    CATCH_DYNAMIC_SECTION(strategy) {
      auto one = train(1, strategy, "global", "linear", "arcface", 6, 3);
      auto two = train(2, strategy, "global", "linear", "arcface", 6, 3);
      CATCH_CHECK(max_diff(two[0].weights, one[0].weights) < 1e-6);
      CATCH_CHECK(max_diff(two[0].losses, one[0].losses) < 1e-6);
      CATCH_CHECK(two[0].correct == one[0].correct);
      CATCH_CHECK(max_diff(two[1].weights, two[0].weights) == 0);  // the ranks agree exactly
      // The steps moved the weights: equality is not that of two untouched models.
      CATCH_CHECK(one[0].losses.front() != one[0].losses.back());
    }
  }
}

CATCH_TEST_CASE("unequal shares of the batch are weighted by their size") {
  // 5 rows on 2 ranks: 2 and 3. An unweighted mean of the two ranks' gradients would differ.
  auto one = train(1, "sam", "global", "linear", "arcface", 5, 3);
  auto two = train(2, "sam", "global", "linear", "arcface", 5, 3);
  CATCH_CHECK(max_diff(two[0].weights, one[0].weights) < 1e-6);
  CATCH_CHECK(max_diff(two[0].losses, one[0].losses) < 1e-6);
}

CATCH_TEST_CASE("AdaFace's norm statistics are those of the global batch on every rank") {
  // The head's buffers (mu, sigma) are written after the parameters.
  auto one = train(1, "none", "global", "linear", "adaface", 6, 3);
  auto two = train(2, "none", "global", "linear", "adaface", 6, 3);
  CATCH_CHECK(max_diff(two[0].weights, one[0].weights) < 1e-6);
  CATCH_CHECK(max_diff(two[1].weights, one[0].weights) < 1e-6);
}

CATCH_TEST_CASE("MagFace, ElasticFace (+) and SphereFace on two ranks take the single-process step") {
  // MagFace's regulariser is a mean over the global batch; ElasticFace draws per row of the global
  // batch (ElasticFace+ sorts against the global batch's target cosines); SphereFace's λ follows
  // the step. With SAM, 3 steps.
  for (const std::string head : {"magface", "elasticface", "elasticface+", "sphereface"}) {
    CATCH_DYNAMIC_SECTION(head) { check_sam_on_two_ranks(head); }
  }
}

CATCH_TEST_CASE("CurricularFace, AdaCos, MV-Softmax, CircleLoss and the combined margin on two ranks") {
  // CurricularFace's t is the global batch's mean target cosine, AdaCos's dynamic scale the
  // global batch's median angle and B_avg, both updated on the first pass only; MV-Softmax's
  // mis-classified set, CircleLoss and the combined margin are per row. With SAM, 3 steps.
  for (const std::string head :
       {"curricularface", "adacos", "mv-softmax", "mv-softmax-adaptive", "circle", "combined-margin"}) {
    CATCH_DYNAMIC_SECTION(head) { check_sam_on_two_ranks(head); }
  }
}

CATCH_TEST_CASE("SAM with local epsilon differs from global epsilon") {
  // Each rank's epsilon from its own rows (m-sharpness) is another step: the option does something.
  auto global = train(2, "sam", "global", "linear", "arcface", 6, 3);
  auto local = train(2, "sam", "local", "linear", "arcface", 6, 3);
  CATCH_CHECK(max_diff(local[0].weights, global[0].weights) > 1e-5);
  // The second pass's gradient is still averaged: the ranks hold the same weights.
  CATCH_CHECK(max_diff(local[1].weights, local[0].weights) == 0);
}

CATCH_TEST_CASE("with iresnet-small (per-rank BN statistics) every rank holds identical weights") {
  auto two = train(2, "sam", "global", "iresnet-small", "arcface", 4, 2);
  CATCH_CHECK(max_diff(two[1].weights, two[0].weights) == 0);
}

CATCH_TEST_CASE("a launch is read from torchrun's variables, else from Slurm's") {
  auto env_of = [](std::map<std::string, std::string> vars) {
    return [vars](const std::string& k) -> std::optional<std::string> {
      auto it = vars.find(k);
      if (it == vars.end()) return std::nullopt;
      return it->second;
    };
  };
  auto t = launch_from_environment(env_of({{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"},
                                          {"MASTER_ADDR", "h0"}, {"MASTER_PORT", "1234"}}));
  CATCH_REQUIRE(t);
  CATCH_CHECK(t->rank == 1);
  CATCH_CHECK(t->world_size == 4);
  CATCH_CHECK(t->local_rank == 1);
  CATCH_CHECK(t->master_addr == "h0");
  CATCH_CHECK(t->master_port == 1234);
  CATCH_CHECK(!t->agent_store);

  auto s = launch_from_environment(env_of({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"},
                                          {"SLURM_LOCALID", "1"},
                                          {"SLURM_JOB_NODELIST", "gpu[07-09,12],cpu1"}}));
  CATCH_REQUIRE(s);
  CATCH_CHECK(s->rank == 5);
  CATCH_CHECK(s->local_rank == 1);
  CATCH_CHECK(s->master_addr == "gpu07");
  CATCH_CHECK(s->master_port == flatface::distributed::kDefaultMasterPort);

  CATCH_CHECK(!launch_from_environment(env_of({})));
  CATCH_CHECK(!launch_from_environment(env_of({{"RANK", "0"}, {"WORLD_SIZE", "1"}})));
  CATCH_CHECK_THROWS_AS(launch_from_environment(env_of({{"RANK", "4"}, {"WORLD_SIZE", "4"}})),
                        flatface::ConfigError);
  CATCH_CHECK(first_slurm_host("a,b") == "a");
  CATCH_CHECK(first_slurm_host("node[1-4]") == "node1");
  CATCH_CHECK(first_slurm_host("x[003,5]y") == "x003y");
}

CATCH_TEST_CASE("a global batch is split into contiguous shares that differ by at most one row") {
  using flatface::batch_share;
  CATCH_CHECK(batch_share(6, 0, 2) == std::make_pair<std::int64_t, std::int64_t>(0, 3));
  CATCH_CHECK(batch_share(6, 1, 2) == std::make_pair<std::int64_t, std::int64_t>(3, 6));
  CATCH_CHECK(batch_share(5, 0, 2) == std::make_pair<std::int64_t, std::int64_t>(0, 2));
  CATCH_CHECK(batch_share(5, 1, 2) == std::make_pair<std::int64_t, std::int64_t>(2, 5));
  CATCH_CHECK_THROWS_AS(batch_share(1, 0, 2), flatface::ConfigError);
}
