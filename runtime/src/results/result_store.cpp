// The HDF5 result file of one run (layout in result_store.hpp).
#include "results/result_store.hpp"

#include <H5Cpp.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>

#include "flatface/options.hpp"

namespace flatface {
namespace {

namespace fs = std::filesystem;

struct MetricField {
  const char* name;
  double EpochMetrics::*member;
};

// /metrics/<name>, in file order; `epoch` is handled apart because it is an integer in memory.
constexpr MetricField kMetricFields[] = {
    {"lr", &EpochMetrics::lr},
    {"loss", &EpochMetrics::loss},
    {"perturbation_loss", &EpochMetrics::perturbation_loss},
    {"loss_perturbed", &EpochMetrics::loss_perturbed},
    {"grad_norm", &EpochMetrics::grad_norm},
    {"epsilon_norm", &EpochMetrics::epsilon_norm},
    {"train_accuracy", &EpochMetrics::train_accuracy},
    {"images_per_second", &EpochMetrics::images_per_second},
    {"wall_time", &EpochMetrics::wall_time},
    {"second_pass_fraction", &EpochMetrics::second_pass_fraction},
};

struct BenchmarkField {
  const char* name;
  double BenchmarkMetrics::*member;
};

constexpr BenchmarkField kBenchmarkFields[] = {
    {"accuracy", &BenchmarkMetrics::accuracy},
    {"accuracy_std", &BenchmarkMetrics::accuracy_std},
    {"threshold", &BenchmarkMetrics::threshold},
    {"tar_at_far", &BenchmarkMetrics::tar_at_far},
};

// Root attributes with a meaning of their own; every other string attribute is a RunRecord
// attribute.
const std::set<std::string> kReservedAttributes{"status",          "failure_reason", "failed_step",
                                                "benchmark_names", "rho_value",      "seed_value"};

void silence_hdf5() {
  static const bool once = [] {
    H5::Exception::dontPrint();
    return true;
  }();
  (void)once;
}

// Without HDF5's own file locks: on a network file system without flock support they make every
// open fail, and they protect nothing here, since a result file is written under a temporary name
// of its writer's and renamed into place.
H5::FileAccPropList unlocked_access() {
  H5::FileAccPropList access;
#if H5_VERSION_GE(1, 10, 7)
  H5Pset_file_locking(access.getId(), false, true);
#endif
  return access;
}

H5::StrType utf8_string_type() {
  H5::StrType type(H5::PredType::C_S1, H5T_VARIABLE);
  type.setCset(H5T_CSET_UTF8);
  return type;
}

void write_string_attribute(H5::H5Object& obj, const std::string& name, const std::string& value) {
  H5::StrType type = utf8_string_type();
  obj.createAttribute(name, type, H5::DataSpace(H5S_SCALAR)).write(type, value);
}

void write_strings_attribute(H5::H5Object& obj, const std::string& name,
                             const std::vector<std::string>& values) {
  H5::StrType type = utf8_string_type();
  hsize_t n = values.size();
  H5::Attribute attr = obj.createAttribute(name, type, H5::DataSpace(1, &n));
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  if (n > 0) attr.write(type, ptrs.data());
}

void write_double_attribute(H5::H5Object& obj, const std::string& name, double value) {
  obj.createAttribute(name, H5::PredType::IEEE_F64LE, H5::DataSpace(H5S_SCALAR))
      .write(H5::PredType::NATIVE_DOUBLE, &value);
}

void write_int_attribute(H5::H5Object& obj, const std::string& name, std::int64_t value) {
  obj.createAttribute(name, H5::PredType::STD_I64LE, H5::DataSpace(H5S_SCALAR))
      .write(H5::PredType::NATIVE_INT64, &value);
}

void write_column(H5::Group& group, const std::string& name, const std::vector<double>& values) {
  hsize_t n = values.size();
  H5::DataSet ds = group.createDataSet(name, H5::PredType::IEEE_F64LE, H5::DataSpace(1, &n));
  if (n > 0) ds.write(values.data(), H5::PredType::NATIVE_DOUBLE);
}

// A number when the whole text is one, else NaN (e.g. rho "-" for a setup without perturbation).
double parse_double(const std::string& text) {
  if (text.empty()) return NAN;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  return (end && *end == '\0') ? v : NAN;
}

void check_benchmark_name(const std::string& path, const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
    throw RuntimeError(path + ": benchmark name '" + name +
                       "' cannot be an HDF5 group name (expected non-empty, without '/')");
}

// benchmark_names first, then any name that only appears in the epochs, sorted.
std::vector<std::string> benchmark_columns(const RunRecord& r) {
  std::vector<std::string> names = r.benchmark_names;
  std::set<std::string> extra;
  for (const auto& e : r.epochs)
    for (const auto& [name, m] : e.benchmarks)
      if (std::find(names.begin(), names.end(), name) == names.end()) extra.insert(name);
  names.insert(names.end(), extra.begin(), extra.end());
  return names;
}

// The group at `path` below `root` ("a/b"), created with its parents as needed.
H5::Group group_at(H5::Group root, const std::string& path) {
  H5::Group g = root;
  std::size_t start = 0;
  while (start < path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    const std::string name = path.substr(start, end - start);
    g = g.nameExists(name) ? g.openGroup(name) : g.createGroup(name);
    start = end + 1;
  }
  return g;
}

void write_analysis(const std::string& file, H5::H5File& f, const AnalysisRecord& a) {
  H5::Group root = f.createGroup("analysis");
  for (const auto& [path, array] : a.arrays) {
    std::size_t count = 1;
    for (auto d : array.shape) count *= static_cast<std::size_t>(d);
    if (path.empty() || path.front() == '/' || path.back() == '/' || count != array.values.size())
      throw RuntimeError(file + ": analysis array '" + path + "' has " +
                         std::to_string(array.values.size()) + " values for its shape, or a bad name");
    const auto slash = path.rfind('/');
    H5::Group g = slash == std::string::npos ? root : group_at(root, path.substr(0, slash));
    const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    std::vector<hsize_t> dims(array.shape.begin(), array.shape.end());
    H5::DataSpace space = dims.empty() ? H5::DataSpace(H5S_SCALAR)
                                       : H5::DataSpace(static_cast<int>(dims.size()), dims.data());
    H5::DataSet ds = g.createDataSet(name, H5::PredType::IEEE_F64LE, space);
    if (count > 0) ds.write(array.values.data(), H5::PredType::NATIVE_DOUBLE);
  }
  for (const auto& [path, attributes] : a.attributes) {
    H5::Group g = group_at(root, path);
    for (const auto& [key, value] : attributes) write_string_attribute(g, key, value);
  }
}

void write_file(const std::string& file, const RunRecord& r) {
  H5::H5File f(file, H5F_ACC_TRUNC, H5::FileCreatPropList::DEFAULT, unlocked_access());
  for (const auto& [key, value] : r.attributes) {
    if (kReservedAttributes.count(key))
      throw RuntimeError(file + ": attribute '" + key + "' is reserved for the result store");
    write_string_attribute(f, key, value);
  }
  if (auto it = r.attributes.find("rho"); it != r.attributes.end())
    write_double_attribute(f, "rho_value", parse_double(it->second));
  if (auto it = r.attributes.find("seed"); it != r.attributes.end()) {
    double seed = parse_double(it->second);
    if (std::isfinite(seed)) write_int_attribute(f, "seed_value", static_cast<std::int64_t>(seed));
  }
  write_string_attribute(f, "status", to_string(r.status));
  write_string_attribute(f, "failure_reason", r.failure_reason);
  write_int_attribute(f, "failed_step", r.failed_step);
  std::vector<std::string> benchmarks = benchmark_columns(r);
  write_strings_attribute(f, "benchmark_names", benchmarks);

  H5::Group metrics = f.createGroup("metrics");
  std::vector<double> column(r.epochs.size());
  for (std::size_t i = 0; i < r.epochs.size(); ++i)
    column[i] = static_cast<double>(r.epochs[i].epoch);
  write_column(metrics, "epoch", column);
  for (const auto& field : kMetricFields) {
    for (std::size_t i = 0; i < r.epochs.size(); ++i) column[i] = r.epochs[i].*field.member;
    write_column(metrics, field.name, column);
  }

  H5::Group eval = f.createGroup("eval");
  for (const auto& name : benchmarks) {
    check_benchmark_name(file, name);
    H5::Group g = eval.createGroup(name);
    for (const auto& field : kBenchmarkFields) {
      for (std::size_t i = 0; i < r.epochs.size(); ++i) {
        auto it = r.epochs[i].benchmarks.find(name);
        column[i] = it == r.epochs[i].benchmarks.end() ? NAN : it->second.*field.member;
      }
      write_column(g, field.name, column);
    }
  }
  if (!r.analysis.empty()) write_analysis(file, f, r.analysis);
  f.flush(H5F_SCOPE_GLOBAL);
  f.close();
}

constexpr std::size_t kAnySize = static_cast<std::size_t>(-1);

void fsync_path(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags);
  if (fd < 0) return;  // best effort: the rename below is what makes the update atomic
  ::fsync(fd);
  ::close(fd);
}

std::vector<double> read_column(const std::string& file, H5::Group& group, const std::string& where,
                                const std::string& name, std::size_t expected_size) {
  if (!group.nameExists(name)) return std::vector<double>(expected_size, NAN);
  H5::DataSet ds = group.openDataSet(name);
  H5::DataSpace space = ds.getSpace();
  if (space.getSimpleExtentNdims() != 1)
    throw RuntimeError(file + ": dataset " + where + "/" + name + " is not 1-D");
  hsize_t n = 0;
  space.getSimpleExtentDims(&n);
  if (expected_size != kAnySize && n != expected_size)
    throw RuntimeError(file + ": dataset " + where + "/" + name + " has " + std::to_string(n) +
                       " rows, expected " + std::to_string(expected_size) +
                       " (the length of /metrics/epoch)");
  std::vector<double> values(n);
  if (n > 0) ds.read(values.data(), H5::PredType::NATIVE_DOUBLE);
  return values;
}

bool is_scalar_string(const H5::Attribute& a) {
  return a.getTypeClass() == H5T_STRING && a.getSpace().getSimpleExtentType() == H5S_SCALAR;
}

std::string read_string_attribute(const H5::Attribute& a) {
  std::string value;
  a.read(a.getStrType(), value);
  return value;
}

std::vector<std::string> read_strings_attribute(const H5::Attribute& a) {
  H5::DataSpace space = a.getSpace();
  hssize_t n = space.getSimpleExtentNpoints();
  std::vector<std::string> out;
  if (n <= 0) return out;
  H5::StrType type = utf8_string_type();
  std::vector<char*> buffer(static_cast<std::size_t>(n), nullptr);
  a.read(type, buffer.data());
  for (char* s : buffer) out.emplace_back(s ? s : "");
  H5Dvlen_reclaim(type.getId(), space.getId(), H5P_DEFAULT, buffer.data());
  return out;
}

// Every dataset and attribute below `g` (at `path`, relative to /analysis) into `a`.
void read_analysis_group(const std::string& file, H5::Group& g, const std::string& path,
                         AnalysisRecord& a) {
  for (int i = 0; i < g.getNumAttrs(); ++i) {
    H5::Attribute attr = g.openAttribute(static_cast<unsigned>(i));
    if (is_scalar_string(attr)) a.attributes[path][attr.getName()] = read_string_attribute(attr);
  }
  for (hsize_t i = 0; i < g.getNumObjs(); ++i) {
    const std::string name = g.getObjnameByIdx(i);
    const std::string child = path.empty() ? name : path + "/" + name;
    if (g.getObjTypeByIdx(i) == H5G_GROUP) {
      H5::Group sub = g.openGroup(name);
      read_analysis_group(file, sub, child, a);
      continue;
    }
    H5::DataSet ds = g.openDataSet(name);
    H5::DataSpace space = ds.getSpace();
    const int rank = space.getSimpleExtentNdims();
    std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
    if (rank > 0) space.getSimpleExtentDims(dims.data());
    AnalysisArray array;
    array.shape.assign(dims.begin(), dims.end());
    array.values.resize(static_cast<std::size_t>(space.getSimpleExtentNpoints()));
    if (ds.getTypeClass() != H5T_FLOAT)
      throw RuntimeError(file + ": dataset /analysis/" + child + " is not floating point");
    if (!array.values.empty()) ds.read(array.values.data(), H5::PredType::NATIVE_DOUBLE);
    a.arrays[child] = std::move(array);
  }
}

RunRecord read_file(const std::string& file) {
  H5::H5File f(file, H5F_ACC_RDONLY, H5::FileCreatPropList::DEFAULT, unlocked_access());
  RunRecord r;
  std::optional<std::string> status;
  int n_attrs = f.getNumAttrs();
  for (int i = 0; i < n_attrs; ++i) {
    H5::Attribute a = f.openAttribute(static_cast<unsigned>(i));
    std::string name = a.getName();
    if (name == "status") {
      status = read_string_attribute(a);
    } else if (name == "failure_reason") {
      r.failure_reason = read_string_attribute(a);
    } else if (name == "failed_step") {
      a.read(H5::PredType::NATIVE_INT64, &r.failed_step);
    } else if (name == "benchmark_names") {
      r.benchmark_names = read_strings_attribute(a);
    } else if (!kReservedAttributes.count(name) && is_scalar_string(a)) {
      r.attributes[name] = read_string_attribute(a);
    }
  }
  if (!status || status->empty())
    throw RuntimeError(file + ": missing root attribute 'status'");
  const auto state = parse_run_state(*status);
  if (!state || (state != RunState::running && state != RunState::complete &&
                 state != RunState::failed))
    throw RuntimeError(file + ": root attribute 'status' is '" + *status +
                       "', expected running, complete or failed");
  r.status = *state;
  if (!f.nameExists("metrics")) throw RuntimeError(file + ": missing group /metrics");
  H5::Group metrics = f.openGroup("metrics");
  if (!metrics.nameExists("epoch")) throw RuntimeError(file + ": missing dataset /metrics/epoch");
  std::vector<double> epoch = read_column(file, metrics, "/metrics", "epoch", kAnySize);
  const std::size_t n = epoch.size();
  r.epochs.resize(n);
  for (std::size_t i = 0; i < n; ++i) r.epochs[i].epoch = static_cast<std::int64_t>(epoch[i]);
  for (const auto& field : kMetricFields) {
    auto column = read_column(file, metrics, "/metrics", field.name, n);
    for (std::size_t i = 0; i < n; ++i) r.epochs[i].*field.member = column[i];
  }

  if (f.nameExists("eval")) {
    H5::Group eval = f.openGroup("eval");
    std::vector<std::string> in_file;
    for (hsize_t i = 0; i < eval.getNumObjs(); ++i) in_file.push_back(eval.getObjnameByIdx(i));
    std::sort(in_file.begin(), in_file.end());
    for (const auto& name : in_file)
      if (std::find(r.benchmark_names.begin(), r.benchmark_names.end(), name) ==
          r.benchmark_names.end())
        r.benchmark_names.push_back(name);
    for (const auto& name : r.benchmark_names) {
      if (!eval.nameExists(name))
        throw RuntimeError(file + ": benchmark '" + name + "' is listed but /eval/" + name +
                           " is missing");
      H5::Group g = eval.openGroup(name);
      std::vector<std::vector<double>> columns;
      for (const auto& field : kBenchmarkFields)
        columns.push_back(read_column(file, g, "/eval/" + name, field.name, n));
      for (std::size_t i = 0; i < n; ++i) {
        BenchmarkMetrics m;
        bool any = false;
        for (std::size_t k = 0; k < columns.size(); ++k) {
          m.*kBenchmarkFields[k].member = columns[k][i];
          any = any || !std::isnan(columns[k][i]);
        }
        if (any) r.epochs[i].benchmarks[name] = m;  // all NaN: not evaluated that epoch
      }
    }
  } else if (!r.benchmark_names.empty()) {
    throw RuntimeError(file + ": benchmarks are listed but group /eval is missing");
  }
  if (f.nameExists("analysis")) {
    H5::Group analysis = f.openGroup("analysis");
    read_analysis_group(file, analysis, "", r.analysis);
  }
  return r;
}

}  // namespace

void write_run_record(const std::string& path, const RunRecord& record) {
  silence_hdf5();
  const std::string tmp = temporary_path(path);
  try {
    write_file(tmp, record);
  } catch (const H5::Exception& e) {
    std::remove(tmp.c_str());
    throw RuntimeError(path + ": cannot write result file (" + e.getFuncName() + ": " +
                       e.getDetailMsg() + ")");
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  fsync_path(tmp, O_RDONLY);
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw RuntimeError(path + ": cannot rename " + tmp + " into place: " + std::strerror(errno));
  fs::path dir = fs::path(path).parent_path();
  fsync_path(dir.empty() ? "." : dir.string(), O_RDONLY | O_DIRECTORY);
}

RunRecord read_run_record(const std::string& path) {
  silence_hdf5();
  if (!fs::exists(path)) throw RuntimeError(path + ": result file does not exist");
  try {
    return read_file(path);
  } catch (const H5::Exception& e) {
    throw RuntimeError(path + ": not a readable flatface result file (" + e.getFuncName() + ": " +
                       e.getDetailMsg() + ")");
  }
}

std::string temporary_path(const std::string& path) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return path + ".tmp." + host + "." + std::to_string(::getpid());
}

std::vector<std::string> list_run_files(const std::string& folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec))
    throw ConfigError(folder + ": results folder does not exist or is not a folder");
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (!entry.is_regular_file()) continue;
    if (entry.path().extension() == ".h5") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace flatface
