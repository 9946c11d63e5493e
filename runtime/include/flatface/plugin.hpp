// The plugin ABI: a plugin library exports one Boost.DLL alias, `flatface_plugin`, a function
// returning its Manifest. Declare entries with FLATFACE_PLUGIN at namespace scope:
//
//   FLATFACE_PLUGIN(
//     flatface::head_entry("arcface", "additive angular margin, s cos(theta + m)", &make_arcface))
#pragma once

#include <boost/dll/alias.hpp>

#include <string>
#include <vector>

#include "flatface/backbone.hpp"
#include "flatface/dataset.hpp"
#include "flatface/head.hpp"
#include "flatface/perturbation.hpp"
#include "flatface/torch_compat.hpp"
#include "flatface/version.hpp"

namespace flatface {

enum class PluginKind { backbone, head, perturbation, dataset };

const char* to_string(PluginKind kind);

struct PluginEntry {
  PluginKind kind;
  std::string name;
  std::string description;
  BackboneFactory backbone = nullptr;
  HeadFactory head = nullptr;
  PerturbationFactory perturbation = nullptr;
  TrainSetFactory train_set = nullptr;               // dataset entries: either or both
  VerificationSetFactory verification_set = nullptr;
  RecogniseFunction recognise = nullptr;  // dataset entries, optional: paths it reads
  std::string accepts = {};  // ... said in a few words for error messages ("*.bin files")
};

struct Manifest {
  int abi_version;
  std::string torch_version;
  std::vector<PluginEntry> entries;
};

using ManifestFunction = Manifest();

inline PluginEntry backbone_entry(std::string name, std::string description, BackboneFactory f) {
  PluginEntry e{PluginKind::backbone, std::move(name), std::move(description)};
  e.backbone = f;
  return e;
}
inline PluginEntry head_entry(std::string name, std::string description, HeadFactory f) {
  PluginEntry e{PluginKind::head, std::move(name), std::move(description)};
  e.head = f;
  return e;
}
inline PluginEntry perturbation_entry(std::string name, std::string description,
                                      PerturbationFactory f) {
  PluginEntry e{PluginKind::perturbation, std::move(name), std::move(description)};
  e.perturbation = f;
  return e;
}
// `recognise` and `accepts` (see dataset.hpp) let commands that take a path find this plugin.
inline PluginEntry dataset_entry(std::string name, std::string description, TrainSetFactory train,
                                 VerificationSetFactory verification,
                                 RecogniseFunction recognise = nullptr, std::string accepts = {}) {
  PluginEntry e{PluginKind::dataset, std::move(name), std::move(description)};
  e.train_set = train;
  e.verification_set = verification;
  e.recognise = recognise;
  e.accepts = std::move(accepts);
  return e;
}

}  // namespace flatface

#ifndef FLATFACE_PLUGIN_ABI_VERSION  // a test overrides it to build a mismatching plugin
#define FLATFACE_PLUGIN_ABI_VERSION FLATFACE_ABI_VERSION
#endif

// The ABI version is also exported as a plain int so the host can check it before calling
// anything in the library.
#define FLATFACE_PLUGIN(...)                                                         \
  extern "C" BOOST_SYMBOL_EXPORT const int flatface_plugin_abi_version;              \
  const int flatface_plugin_abi_version = FLATFACE_PLUGIN_ABI_VERSION;               \
  namespace {                                                                        \
  flatface::Manifest flatface_plugin_manifest() {                                    \
    return flatface::Manifest{FLATFACE_PLUGIN_ABI_VERSION,                           \
                              flatface::torch_version_string(), {__VA_ARGS__}};      \
  }                                                                                  \
  }                                                                                  \
  BOOST_DLL_ALIAS(flatface_plugin_manifest, flatface_plugin)
