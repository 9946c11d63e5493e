#include "data/dataset_claims.hpp"

#include <algorithm>
#include <exception>
#include <filesystem>
#include <fstream>

namespace flatface {

namespace fs = std::filesystem;

const char* to_string(DataRole role) {
  return role == DataRole::train ? "training set" : "verification set";
}

namespace {

PathProbe probe(const std::string& path) {
  PathProbe p;
  p.path = fs::absolute(path).lexically_normal().string();
  p.is_directory = fs::is_directory(p.path);
  if (!p.is_directory) {
    std::ifstream in(p.path, std::ios::binary);
    p.head.resize(512);
    in.read(reinterpret_cast<char*>(p.head.data()), static_cast<std::streamsize>(p.head.size()));
    p.head.resize(static_cast<std::size_t>(std::max<std::streamsize>(in.gcount(), 0)));
  }
  return p;
}

bool in_role(const PathClaim& c, DataRole role) {
  return role == DataRole::train ? c.train : c.verification;
}

}  // namespace

std::string what_plugins_read(const Registry& reg) {
  std::string list;
  for (const auto* e : reg.entries(PluginKind::dataset)) {
    const std::string accepts = e->entry.claim == nullptr
                                    ? "no paths: configure it in an experiment"
                                    : (e->entry.accepts.empty() ? "some paths" : e->entry.accepts);
    list += "\n  " + e->entry.name + ": " + accepts;
  }
  return list.empty() ? " none loaded" : list;
}

std::vector<PathOwner> claims_on(const Registry& reg, const std::string& path) {
  if (!fs::exists(path)) throw ConfigError("'" + path + "': no such file or folder");
  const PathProbe p = probe(path);
  std::vector<PathOwner> owners;
  for (const auto* e : reg.entries(PluginKind::dataset)) {
    if (e->entry.claim == nullptr) continue;
    PathClaim c;
    try {
      c = e->entry.claim(p);
    } catch (const std::exception&) {
      continue;  // a claim must not throw; one that does claims nothing
    }
    // A role the plugin has no factory for cannot be read, whatever the claim says.
    c.train = c.train && e->entry.train_set != nullptr;
    c.verification = c.verification && e->entry.verification_set != nullptr;
    if (c.train || c.verification) owners.push_back({e->entry.name, c});
  }
  return owners;
}

PluginRef claimed_ref(const Registry& reg, const std::string& path, DataRole role,
                      const std::string& plugin) {
  std::string chosen = plugin;
  if (chosen.empty()) {
    std::vector<std::string> names;
    for (const auto& o : claims_on(reg, path))
      if (in_role(o.claim, role)) names.push_back(o.plugin);
    if (names.empty()) {
      throw ConfigError("'" + path + "': no dataset plugin reads it as a " + to_string(role) +
                        "; what each one reads from a path:" + what_plugins_read(reg));
    }
    if (names.size() > 1) {
      throw ConfigError("'" + path + "': dataset plugins '" + names[0] + "' and '" + names[1] +
                        "' both read it as a " + to_string(role) +
                        "; choose one with --dataset NAME");
    }
    chosen = names[0];
  } else if (!fs::exists(path)) {
    throw ConfigError("'" + path + "': no such file or folder");
  }
  reg.get(PluginKind::dataset, chosen);  // an unknown --dataset lists the known ones
  SourcePos where{"<command line>"};
  PluginRef ref{chosen, Options(std::string(to_string(role)) + " '" + path + "'", where)};
  ref.options.set("path", {fs::absolute(path).lexically_normal().string(), where});
  return ref;
}

}  // namespace flatface
