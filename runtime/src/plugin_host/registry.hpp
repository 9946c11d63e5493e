// plugin_host/: the host's side of the plugin SDK. The registry (this file) finds plugin libraries
// and checks their manifests; the factory (factory.hpp) turns an experiment's tables into plugin
// objects; options.cpp and torch_compat.cpp are the compiled parts of the SDK headers
// (runtime/include/flatface/). Uses experiment/ and formats/.
//
// Finds plugin libraries, checks their manifests and indexes entries by (kind, name).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "flatface/plugin.hpp"

namespace flatface {

struct LoadedEntry {
  PluginEntry entry;
  std::string library;  // path of the .so that provides it
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Loads every `*.so` in `dir` (non-recursive). A missing folder is ignored.
  void scan_folder(const std::string& dir);
  // Loads one library; throws ConfigError naming the file on any failure.
  void load_library(const std::string& path);
  // The default search path: the build tree's and install prefix's plugin folders, then
  // FLATFACE_PLUGIN_PATH (colon separated), then `extra`.
  void scan_default(const std::vector<std::string>& extra = {});

  // Throws ConfigError listing the available names of that kind.
  const LoadedEntry& get(PluginKind kind, const std::string& name) const;
  const LoadedEntry* find(PluginKind kind, const std::string& name) const;
  std::vector<const LoadedEntry*> entries(PluginKind kind) const;
  std::vector<const LoadedEntry*> all() const;
  std::vector<std::string> folders_scanned() const { return folders_; }

 private:
  struct Library;
  std::vector<std::unique_ptr<Library>> libraries_;
  std::map<std::pair<int, std::string>, LoadedEntry> index_;
  std::vector<std::string> folders_;
};

std::vector<std::string> default_plugin_folders();

}  // namespace flatface
