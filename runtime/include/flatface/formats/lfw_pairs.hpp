// Pair lists for verification on image folders:
//  - LFW `pairs.txt`: an optional header ("10 300": folds and pairs per class per fold, or "N"),
//    then "name i j" (same person) and "name1 i name2 j" (different people); image k of `name`
//    is root/name/name_%04d.jpg;
//  - path lists like kz25's `test600.pairs.txt`: "path1<TAB>path2<TAB>1|0", paths relative to
//    root. When root/path does not exist, root/<parent folder>/<file name> is tried, so a list
//    written on another machine works against root/<identity>/<image>.
#pragma once

#include <string>
#include <vector>

namespace flatface {

struct PairEntry {
  std::string first, second;  // as written (LFW: already expanded to name/name_NNNN.jpg)
  bool same = false;
  int line = 0;  // 1-based line in the pairs file
};

// Parses the text of a pairs file; `source` names it in errors (RuntimeError "source:LINE: ...").
std::vector<PairEntry> parse_pairs(const std::string& text, const std::string& source);

struct PairFiles {
  std::vector<std::string> files;  // pair i is files[2i], files[2i+1]
  std::vector<bool> issame;
};

// Reads and parses `pairs_path` and resolves every image under `root`; RuntimeError naming the
// line and the paths tried when an image does not exist.
PairFiles read_pairs_file(const std::string& pairs_path, const std::string& root);

}  // namespace flatface
