#include "plugin_host/factory.hpp"

#include <filesystem>

namespace flatface {

namespace {

// Plugin factories get a fresh read-tracking copy; whatever they leave unread is a typo.
template <typename Make>
auto construct(const Options& source, const std::string& plugin, const std::string& kind,
               Make make) {
  Options options = source.fresh_copy();
  options.consume("plugin");
  auto object = [&] {
    try {
      return make(options);
    } catch (const ConfigError&) {
      throw;
    } catch (const RuntimeError& err) {
      // Bad data stays a runtime failure (exit 1), now naming the plugin.
      throw RuntimeError(kind + " '" + plugin + "': " + err.what());
    } catch (const std::exception& err) {
      throw ConfigError(source.pos().str() + ": " + kind + " '" + plugin + "': " + err.what());
    }
  }();
  options.check_all_used();
  return object;
}

}  // namespace

std::shared_ptr<Backbone> make_backbone(const Registry& reg, const PluginRef& ref) {
  const auto& e = reg.get(PluginKind::backbone, ref.plugin);
  return construct(ref.options, ref.plugin, "backbone",
                   [&](const Options& o) { return e.entry.backbone(BackboneArgs{o}); });
}

std::shared_ptr<MarginHead> make_head(const Registry& reg, const PluginRef& ref,
                                      std::int64_t embedding_dim, std::int64_t num_classes,
                                      Collectives& collectives, std::uint64_t seed) {
  const auto& e = reg.get(PluginKind::head, ref.plugin);
  return construct(ref.options, ref.plugin, "head", [&](const Options& o) {
    return e.entry.head(HeadArgs{o, embedding_dim, num_classes, &collectives, seed});
  });
}

std::unique_ptr<Perturbation> make_perturbation(const Registry& reg, const std::string& plugin,
                                                const Options& options, std::uint64_t seed) {
  const auto& e = reg.get(PluginKind::perturbation, plugin);
  return construct(options, plugin, "perturbation", [&](const Options& o) {
    Options with_host_keys = o;
    with_host_keys.consume("bn_second_pass");
    with_host_keys.consume("epsilon");  // data-parallel: the host's choice, see StepContext
    return e.entry.perturbation(PerturbationArgs{with_host_keys, seed});
  });
}

std::shared_ptr<TrainSet> make_train_set(const Registry& reg, const PluginRef& ref,
                                         std::int64_t input_size, std::uint64_t seed) {
  const auto& e = reg.get(PluginKind::dataset, ref.plugin);
  if (!e.entry.train_set) {
    throw ConfigError(ref.options.pos().str() + ": dataset plugin '" + ref.plugin +
                      "' provides verification sets only, not training data");
  }
  return construct(ref.options, ref.plugin, "dataset", [&](const Options& o) {
    return e.entry.train_set(
        DatasetArgs{o, std::filesystem::current_path().string(), input_size, seed});
  });
}

std::shared_ptr<VerificationSet> make_verification_set(const Registry& reg, const PluginRef& ref,
                                                       std::int64_t input_size,
                                                       std::uint64_t seed) {
  const auto& e = reg.get(PluginKind::dataset, ref.plugin);
  if (!e.entry.verification_set) {
    throw ConfigError(ref.options.pos().str() + ": dataset plugin '" + ref.plugin +
                      "' provides training data only, not verification pairs");
  }
  return construct(ref.options, ref.plugin, "dataset", [&](const Options& o) {
    o.consume("name");
    return e.entry.verification_set(
        DatasetArgs{o, std::filesystem::current_path().string(), input_size, seed});
  });
}

std::unique_ptr<Registry> open_registry(const std::vector<std::string>& extra) {
  auto reg = std::make_unique<Registry>();
  reg->scan_default(extra);
  return reg;
}

}  // namespace flatface
