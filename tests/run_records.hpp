// The result files of a folder read back, and the check that two folders trained the same numbers
// (bit for bit: a resumed or shared grid must repeat the uninterrupted serial one exactly).
#pragma once

#include <cmath>
#include <filesystem>
#include <map>
#include <string>

#include "catch_compat.hpp"
#include "results/result_store.hpp"

namespace flatface::testing {

// Every result file of the folder by file name, read back (a file that does not read fails).
inline std::map<std::string, RunRecord> records(const std::filesystem::path& folder) {
  std::map<std::string, RunRecord> out;
  if (!std::filesystem::exists(folder)) return out;
  for (const auto& file : list_run_files(folder.string()))
    out[std::filesystem::path(file).filename().string()] = read_run_record(file);
  return out;
}

// Equal, NaN equal to NaN (a number not measured).
inline bool same(double a, double b) {
  return a == b || (std::isnan(a) && std::isnan(b));
}

// Every run of `want` is in `have`, complete, with every number of every epoch equal (benchmark
// `benchmark`'s accuracy and threshold included).
inline void check_same_runs(const std::map<std::string, RunRecord>& have,
                            const std::map<std::string, RunRecord>& want,
                            const std::string& benchmark) {
  CATCH_REQUIRE(have.size() == want.size());
  for (const auto& [name, expected] : want) {
    CATCH_CAPTURE(name);
    const RunRecord& got = have.at(name);
    CATCH_CHECK(got.status == RunState::complete);
    CATCH_REQUIRE(got.epochs.size() == expected.epochs.size());
    for (std::size_t k = 0; k < expected.epochs.size(); ++k) {
      CATCH_CAPTURE(k);
      const auto &a = got.epochs[k], &b = expected.epochs[k];
      CATCH_CHECK(same(a.loss, b.loss));
      CATCH_CHECK(same(a.loss_perturbed, b.loss_perturbed));
      CATCH_CHECK(same(a.grad_norm, b.grad_norm));
      CATCH_CHECK(same(a.epsilon_norm, b.epsilon_norm));
      CATCH_CHECK(same(a.train_accuracy, b.train_accuracy));
      CATCH_CHECK(same(a.lr, b.lr));
      CATCH_CHECK(same(a.benchmarks.at(benchmark).accuracy, b.benchmarks.at(benchmark).accuracy));
      CATCH_CHECK(
          same(a.benchmarks.at(benchmark).threshold, b.benchmarks.at(benchmark).threshold));
    }
  }
}

}  // namespace flatface::testing
