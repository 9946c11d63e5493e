#include "plugin_host/registry.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "build_paths.hpp"

namespace flatface {

namespace fs = std::filesystem;

const char* to_string(PluginKind kind) {
  switch (kind) {
    case PluginKind::backbone:
      return "backbone";
    case PluginKind::head:
      return "head";
    case PluginKind::perturbation:
      return "perturbation";
    case PluginKind::dataset:
      return "dataset";
  }
  return "?";
}

struct Registry::Library {
  std::string path;
  boost::dll::shared_library lib;
};

Registry::Registry() = default;

Registry::~Registry() {
  // Entries hold function pointers into the libraries; drop them before unloading.
  index_.clear();
  // Objects made by plugins may still be alive elsewhere at exit; keep the code mapped.
  for (auto& l : libraries_) (void)new boost::dll::shared_library(std::move(l->lib));
}

namespace {

// The folder holding this libflatface.so, as the loader found it ("" if unknown).
fs::path host_library_dir() {
  Dl_info info{};
  if (!::dladdr(reinterpret_cast<void*>(&default_plugin_folders), &info) || !info.dli_fname)
    return {};
  std::error_code ec;
  auto dir = fs::weakly_canonical(fs::path(info.dli_fname), ec).parent_path();
  return ec ? fs::path() : dir;
}

bool same_folder(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::equivalent(a, b, ec);
}

}  // namespace

std::vector<std::string> default_plugin_folders() {
  std::vector<std::string> out;
  // The build tree's plugins for a host that runs from the build tree; otherwise the installed
  // ones next to the library, wherever the install was moved. Never both: the same plugins in
  // two folders would be duplicates.
  fs::path lib = host_library_dir();
  if (lib.empty()) {
    out.push_back(FLATFACE_INSTALL_PLUGIN_DIR);
  } else if (same_folder(lib, FLATFACE_BUILD_LIB_DIR)) {
    out.push_back(FLATFACE_BUILD_PLUGIN_DIR);
  } else {
    out.push_back((lib / FLATFACE_PLUGIN_DIR_FROM_LIB).string());
  }
  if (const char* env = std::getenv("FLATFACE_PLUGIN_PATH")) {
    std::string s = env;
    std::size_t start = 0;
    while (start <= s.size()) {
      std::size_t end = s.find(':', start);
      if (end == std::string::npos) end = s.size();
      if (end > start) out.push_back(s.substr(start, end - start));
      start = end + 1;
    }
  }
  return out;
}

void Registry::scan_default(const std::vector<std::string>& extra) {
  auto folders = default_plugin_folders();
  folders.insert(folders.end(), extra.begin(), extra.end());
  std::set<std::string> seen;
  for (const auto& f : folders) {
    std::error_code ec;
    auto canon = fs::weakly_canonical(f, ec).string();
    if (!seen.insert(ec ? f : canon).second) continue;
    scan_folder(f);
  }
}

void Registry::scan_folder(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  folders_.push_back(dir);
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".so" && e.is_regular_file()) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) load_library(f);
}

void Registry::load_library(const std::string& path) {
  std::error_code ec;
  std::string canon = fs::weakly_canonical(path, ec).string();
  if (ec) canon = path;
  for (const auto& l : libraries_)
    if (l->path == canon) return;

  auto library = std::make_unique<Library>();
  library->path = canon;
  boost::dll::fs::error_code load_ec;
  library->lib.load(canon, load_ec,
                    boost::dll::load_mode::rtld_lazy | boost::dll::load_mode::rtld_local);
  if (load_ec) {
    // Boost only says "bad file descriptor"; ask the loader itself for the reason.
    std::string why = load_ec.message();
    if (void* h = ::dlopen(canon.c_str(), RTLD_LAZY | RTLD_LOCAL)) {
      ::dlclose(h);
    } else if (const char* msg = ::dlerror()) {
      why = msg;
    }
    throw ConfigError(path + ": cannot load plugin library: " + why);
  }
  if (!library->lib.has("flatface_plugin") || !library->lib.has("flatface_plugin_abi_version")) {
    throw ConfigError(path + ": not a flatface plugin (no exported 'flatface_plugin' manifest; " +
                      "declare one with FLATFACE_PLUGIN)");
  }
  // The version is a plain int, read before calling into code whose types may have changed.
  int abi = library->lib.get<const int>("flatface_plugin_abi_version");
  if (abi != FLATFACE_ABI_VERSION) {
    throw ConfigError(path + ": plugin ABI version " + std::to_string(abi) +
                      " does not match the host's " + std::to_string(FLATFACE_ABI_VERSION) +
                      "; rebuild the plugin against this flatface");
  }
  Manifest manifest = library->lib.get_alias<ManifestFunction>("flatface_plugin")();
  if (manifest.torch_version != torch_version_string()) {
    throw ConfigError(path + ": plugin was built with libtorch " + manifest.torch_version +
                      " but the host uses libtorch " + torch_version_string() +
                      "; rebuild the plugin against the host's libtorch");
  }
  for (auto& entry : manifest.entries) {
    auto key = std::make_pair(static_cast<int>(entry.kind), entry.name);
    auto it = index_.find(key);
    if (it != index_.end()) {
      throw ConfigError("duplicate " + std::string(to_string(entry.kind)) + " plugin '" +
                        entry.name + "': provided by both " + it->second.library + " and " + canon);
    }
    index_.emplace(key, LoadedEntry{entry, canon});
  }
  libraries_.push_back(std::move(library));
}

const LoadedEntry* Registry::find(PluginKind kind, const std::string& name) const {
  auto it = index_.find({static_cast<int>(kind), name});
  return it == index_.end() ? nullptr : &it->second;
}

const LoadedEntry& Registry::get(PluginKind kind, const std::string& name) const {
  if (const auto* e = find(kind, name)) return *e;
  std::string names;
  for (const auto* e : entries(kind)) names += (names.empty() ? "" : ", ") + e->entry.name;
  throw ConfigError("unknown " + std::string(to_string(kind)) + " plugin '" + name + "' (" +
                    (names.empty() ? std::string("none is loaded; check the plugin path")
                                   : "available: " + names) +
                    ")");
}

std::vector<const LoadedEntry*> Registry::entries(PluginKind kind) const {
  std::vector<const LoadedEntry*> out;
  for (const auto& [key, e] : index_)
    if (key.first == static_cast<int>(kind)) out.push_back(&e);
  return out;
}

std::vector<const LoadedEntry*> Registry::all() const {
  std::vector<const LoadedEntry*> out;
  for (const auto& kv : index_) out.push_back(&kv.second);
  return out;
}

}  // namespace flatface
