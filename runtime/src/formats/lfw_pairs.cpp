#include "flatface/formats/lfw_pairs.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "flatface/options.hpp"

namespace flatface {
namespace {

// Fields split on tabs when the line has any (paths may hold spaces), else on blanks.
std::vector<std::string> fields(const std::string& line) {
  std::vector<std::string> out;
  if (line.find('\t') != std::string::npos) {
    std::string f;
    std::istringstream in(line);
    while (std::getline(in, f, '\t')) {
      while (!f.empty() && (f.back() == ' ' || f.back() == '\r')) f.pop_back();
      while (!f.empty() && f.front() == ' ') f.erase(0, 1);
      if (!f.empty()) out.push_back(f);
    }
  } else {
    std::istringstream in(line);
    std::string f;
    while (in >> f) out.push_back(f);
  }
  return out;
}

bool is_count(const std::string& s, long* value = nullptr) {
  if (s.empty() || s.size() > 9) return false;
  long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (value) *value = v;
  return true;
}

std::string lfw_file(const std::string& name, long index) {
  char number[16];
  std::snprintf(number, sizeof number, "%04ld", index);
  return name + "/" + name + "_" + number + ".jpg";
}

}  // namespace

std::vector<PairEntry> parse_pairs(const std::string& text, const std::string& source) {
  std::vector<PairEntry> pairs;
  long expected = -1;
  std::istringstream in(text);
  std::string line;
  int number = 0;
  bool first = true;
  while (std::getline(in, line)) {
    ++number;
    std::vector<std::string> f = fields(line);
    if (f.empty() || f[0][0] == '#') continue;
    auto where = [&] { return source + ":" + std::to_string(number) + ": "; };
    long a = 0, b = 0;
    if (first && f.size() <= 2 && is_count(f[0], &a) && (f.size() == 1 || is_count(f[1], &b))) {
      expected = f.size() == 1 ? 2 * a : 2 * a * b;  // "N" same + N different; folds x 2 x N
      first = false;
      continue;
    }
    first = false;
    PairEntry p;
    p.line = number;
    long i = 0, j = 0;
    if (f.size() == 3 && is_count(f[1], &i) && is_count(f[2], &j)) {  // name i j
      p = {lfw_file(f[0], i), lfw_file(f[0], j), true, number};
    } else if (f.size() == 4 && is_count(f[1], &i) && is_count(f[3], &j)) {  // name1 i name2 j
      p = {lfw_file(f[0], i), lfw_file(f[2], j), false, number};
    } else if (f.size() == 3 && (f[2] == "0" || f[2] == "1")) {  // path1 path2 label
      p = {f[0], f[1], f[2] == "1", number};
    } else {
      throw RuntimeError(where() +
                         "expected 'name i j', 'name1 i name2 j' or 'path1 path2 0|1', "
                         "got '" +
                         line + "'");
    }
    pairs.push_back(p);
  }
  if (expected >= 0 && static_cast<long>(pairs.size()) != expected)
    throw RuntimeError(source + ": the header announces " + std::to_string(expected) +
                       " pairs, but the file lists " + std::to_string(pairs.size()));
  if (pairs.empty()) throw RuntimeError(source + ": no pairs found");
  return pairs;
}

PairFiles read_pairs_file(const std::string& pairs_path, const std::string& root) {
  namespace fs = std::filesystem;
  std::ifstream in(pairs_path, std::ios::binary);
  if (!in) throw RuntimeError(pairs_path + ": cannot open the pairs file");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  PairFiles out;
  for (const PairEntry& p : parse_pairs(text, pairs_path)) {
    for (const std::string* rel : {&p.first, &p.second}) {
      fs::path direct = fs::path(root) / *rel;
      fs::path rel_path(*rel);
      fs::path fallback = fs::path(root) / rel_path.parent_path().filename() / rel_path.filename();
      if (fs::is_regular_file(direct)) {
        out.files.push_back(direct.string());
      } else if (fs::is_regular_file(fallback)) {
        out.files.push_back(fallback.string());
      } else {
        throw RuntimeError(pairs_path + ":" + std::to_string(p.line) + ": image '" +
                           direct.string() + "' not found (also tried '" + fallback.string() +
                           "')");
      }
    }
    out.issame.push_back(p.same);
  }
  return out;
}

}  // namespace flatface
