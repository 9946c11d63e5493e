// Builds backbones through the plugin registry, as the host does, from integer options.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "plugin_host/factory.hpp"
#include "flatface/backbone.hpp"

namespace flatface::testing {

inline const Registry& plugins() {
  static const std::unique_ptr<Registry> registry = open_registry({});
  return *registry;
}

inline Options int_options(const std::map<std::string, std::int64_t>& values) {
  Options options("backbone", SourcePos{"test.toml", 1, 1});
  for (const auto& [key, value] : values) options.set(key, Options::Value{value, SourcePos{}});
  return options;
}

inline std::shared_ptr<Backbone> make_backbone_with(const std::string& plugin,
                                                    const Options& options) {
  return flatface::make_backbone(plugins(), PluginRef{plugin, options});
}

inline std::shared_ptr<Backbone> make_backbone(
    const std::string& plugin, const std::map<std::string, std::int64_t>& values = {}) {
  return make_backbone_with(plugin, int_options(values));
}

}  // namespace flatface::testing
