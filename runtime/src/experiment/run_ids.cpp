#include "experiment/run_ids.hpp"

#include <cstdio>
#include <sstream>

namespace flatface {

namespace {

// Numbers at 17 digits, as ids have always hashed them (not the shortest form of records).
std::string canonical_train(const TrainSettings& t) {
  std::ostringstream os;
  os.precision(17);
  os << "epochs=" << t.epochs << ",batch=" << t.batch_size << ",lr=" << t.lr
     << ",momentum=" << t.momentum << ",wd=" << t.weight_decay
     << ",decay_bn_bias=" << t.decay_bn_and_bias << ",milestones=[";
  for (auto m : t.milestones) os << m << ',';
  os << "],gamma=" << t.gamma << ",warmup=" << t.warmup_epochs << ",precision=" << t.precision;
  // Only when off, so that the ids of runs with today's default (flip on) stay what they were.
  if (!t.flip) os << ",flip=0";
  return os.str();
}

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

std::string run_canonical(const Experiment& run_view, std::size_t setup,
                          const Options& perturbation, std::int64_t seed) {
  const Experiment& re = run_view;
  const Setup& rs = re.setups[setup];
  // Numbers at 17 digits (id_text), its form since the first grids, so that ids stay what they
  // were.
  std::ostringstream os;
  os << "train_data=" << re.train_data.plugin << re.train_data.options.id_text() << ";eval=";
  for (const auto& ev : re.eval)
    os << ev.name << ":" << ev.data.plugin << ev.data.options.id_text() << ";";
  os << "backbone=" << re.backbone.plugin << re.backbone.options.id_text();
  // Starting weights change every result. Only added when given, so that the ids of
  // experiments without them stay what they were.
  if (!re.init.empty()) os << ";init=" << re.init;
  if (!re.init_prefix.empty()) os << ";init_prefix=" << re.init_prefix;
  os << ";train{" << canonical_train(re.train) << "}";
  os << ";setup=" << rs.name << ";head=" << rs.head.plugin << rs.head.options.id_text()
     << ";perturbation=" << rs.perturbation.plugin << perturbation.id_text() << ";seed=" << seed;
  return os.str();
}

std::string run_id(const std::string& canonical) {
  char id[17];
  std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(fnv1a(canonical)));
  return std::string(id, 10);
}

}  // namespace flatface
