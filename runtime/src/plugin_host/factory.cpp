#include "plugin_host/factory.hpp"

#include <array>
#include <filesystem>
#include <string>
#include <vector>

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

// One number for all three channels, or one per input channel.
std::array<float, 3> per_channel(const Options& o, const std::string& key,
                                 const std::array<float, 3>& fallback) {
  std::vector<double> v = o.get_doubles(key, {fallback[0], fallback[1], fallback[2]});
  if (v.size() == 1) v.assign(3, v[0]);
  if (v.size() != 3) {
    throw ConfigError(o.pos_of(key).str() + ": backbone '" + key +
                      "' takes one number or three (one per input channel), not " +
                      std::to_string(v.size()));
  }
  std::array<float, 3> out{};
  for (std::size_t c = 0; c < 3; ++c) out[c] = static_cast<float>(v[c]);
  return out;
}

// The backbone table's InputFormat keys (flatface/backbone.hpp), which the host reads.
const char* const kInputFormatKeys[] = {"channels", "mean", "std"};

InputFormat read_input_format(const Options& o) {
  InputFormat format;
  const std::string channels = o.get_string("channels", "rgb");
  if (channels != "rgb" && channels != "bgr") {
    throw ConfigError(o.pos_of("channels").str() +
                      ": backbone 'channels' must be \"rgb\" or \"bgr\" (the order of the "
                      "network's input channels), not \"" + channels + "\"");
  }
  format.bgr = channels == "bgr";
  format.mean = per_channel(o, "mean", format.mean);
  format.std = per_channel(o, "std", format.std);
  for (const float s : format.std) {
    if (!(s > 0.0f)) {
      throw ConfigError(o.pos_of("std").str() + ": backbone 'std' must be positive, got " +
                        std::to_string(s));
    }
  }
  return format;
}

}  // namespace

std::shared_ptr<Backbone> make_backbone(const Registry& reg, const PluginRef& ref) {
  const auto& e = reg.get(PluginKind::backbone, ref.plugin);
  const InputFormat format = read_input_format(ref.options);
  auto backbone = construct(ref.options, ref.plugin, "backbone", [&](const Options& o) {
    Options plugin_keys = o;
    for (const char* key : kInputFormatKeys) plugin_keys.consume(key);
    return e.entry.backbone(BackboneArgs{plugin_keys});
  });
  backbone->set_input_format(format);
  return backbone;
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
