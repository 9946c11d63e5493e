// Turns experiment references into plugin objects, checking that every option was understood.
#pragma once

#include <memory>

#include "experiment/experiment.hpp"
#include "flatface/plugin.hpp"
#include "plugin_host/registry.hpp"

namespace flatface {

std::shared_ptr<Backbone> make_backbone(const Registry& reg, const PluginRef& ref);
// `collectives`: the ranks that train the run (a head built outside training: one process);
// `seed`: the run's seed, for heads that draw random numbers.
std::shared_ptr<MarginHead> make_head(const Registry& reg, const PluginRef& ref,
                                      std::int64_t embedding_dim, std::int64_t num_classes,
                                      Collectives& collectives = one_process(),
                                      std::uint64_t seed = 0);
// `seed`: the run's seed, for strategies that draw random numbers.
std::unique_ptr<Perturbation> make_perturbation(const Registry& reg, const std::string& plugin,
                                                const Options& options, std::uint64_t seed = 0);
std::shared_ptr<TrainSet> make_train_set(const Registry& reg, const PluginRef& ref,
                                         std::int64_t input_size, std::uint64_t seed);
std::shared_ptr<VerificationSet> make_verification_set(const Registry& reg, const PluginRef& ref,
                                                       std::int64_t input_size, std::uint64_t seed);

// A registry with the default folders plus the experiment's [plugins] paths and `extra`.
std::unique_ptr<Registry> open_registry(const std::vector<std::string>& extra);

}  // namespace flatface
