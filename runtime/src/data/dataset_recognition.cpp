#include "data/dataset_recognition.hpp"

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

bool in_role(const PathRecognition& r, DataRole role) {
  return role == DataRole::train ? r.train : r.verification;
}

}  // namespace

std::string what_plugins_read(const Registry& reg) {
  std::string list;
  for (const auto* e : reg.entries(PluginKind::dataset)) {
    const std::string accepts = e->entry.recognise == nullptr
                                    ? "no paths: configure it in an experiment"
                                    : (e->entry.accepts.empty() ? "some paths" : e->entry.accepts);
    list += "\n  " + e->entry.name + ": " + accepts;
  }
  return list.empty() ? " none loaded" : list;
}

std::vector<Recogniser> recognisers_of(const Registry& reg, const std::string& path) {
  if (!fs::exists(path)) throw ConfigError("'" + path + "': no such file or folder");
  const PathProbe p = probe(path);
  std::vector<Recogniser> out;
  for (const auto* e : reg.entries(PluginKind::dataset)) {
    if (e->entry.recognise == nullptr) continue;
    PathRecognition r;
    try {
      r = e->entry.recognise(p);
    } catch (const std::exception&) {
      continue;  // a recognise function must not throw; one that does recognises nothing
    }
    // A role the plugin has no factory for cannot be read, whatever it recognises.
    r.train = r.train && e->entry.train_set != nullptr;
    r.verification = r.verification && e->entry.verification_set != nullptr;
    if (r.train || r.verification) out.push_back({e->entry.name, r});
  }
  return out;
}

PluginRef recognised_ref(const Registry& reg, const std::string& path, DataRole role,
                         const std::string& plugin) {
  std::string chosen = plugin;
  if (chosen.empty()) {
    std::vector<std::string> names;
    for (const auto& r : recognisers_of(reg, path))
      if (in_role(r.roles, role)) names.push_back(r.plugin);
    if (names.empty()) {
      throw ConfigError("'" + path + "': no dataset plugin recognises it as a " + to_string(role) +
                        "; what each one reads from a path:" + what_plugins_read(reg));
    }
    if (names.size() > 1) {
      throw ConfigError("'" + path + "': dataset plugins '" + names[0] + "' and '" + names[1] +
                        "' both recognise it as a " + to_string(role) +
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
