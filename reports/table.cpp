#include "table.hpp"

#include <sstream>

namespace flatface::reports {
namespace {

std::string markdown_cell(const Cell& c) {
  std::string s;
  for (char ch : c.text) s += ch == '|' ? std::string("\\|") : std::string(1, ch);
  return c.bold && !s.empty() ? "**" + s + "**" : s;
}

std::string latex_cell(const Cell& c) {
  std::string s = c.latex.empty() ? latex_escape(c.text) : c.latex;
  return c.bold && !s.empty() ? "\\textbf{" + s + "}" : s;
}

}  // namespace

std::string latex_escape(const std::string& text) {
  std::string out;
  for (char ch : text) {
    switch (ch) {
      case '&':
      case '%':
      case '$':
      case '#':
      case '_':
      case '{':
      case '}':
        out += '\\';
        out += ch;
        break;
      case '~':
        out += "\\textasciitilde{}";
        break;
      case '^':
        out += "\\textasciicircum{}";
        break;
      case '\\':
        out += "\\textbackslash{}";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

std::string render_markdown(const Table& t) {
  std::ostringstream out;
  if (!t.caption.empty()) out << "**" << t.caption << "**\n\n";
  for (const auto& w : t.warnings) out << "> **Warning:** " << w << "\n\n";
  out << '|';
  for (const auto& h : t.header) out << ' ' << markdown_cell(h) << " |";
  out << "\n|";
  for (std::size_t i = 0; i < t.header.size(); ++i)
    out << (i < t.numeric.size() && t.numeric[i] ? " ---: |" : " --- |");
  out << '\n';
  for (const auto& row : t.rows) {
    out << '|';
    for (const auto& c : row) out << ' ' << markdown_cell(c) << " |";
    out << '\n';
  }
  if (!t.notes.empty()) out << '\n';
  for (const auto& n : t.notes) out << markdown_cell(n) << "  \n";
  if (!t.unaveraged.empty()) {
    out << "\nNot averaged (incomplete runs):\n\n";
    for (const auto& u : t.unaveraged) out << "- " << markdown_cell(u) << '\n';
  }
  if (!t.missing.empty()) {
    out << "\nMissing (no result file yet):\n\n";
    for (const auto& m : t.missing) out << "- " << markdown_cell(m) << '\n';
  }
  return out.str();
}

std::string render_latex(const Table& t) {
  std::ostringstream out;
  for (const auto& w : t.warnings) out << "% WARNING: " << w << '\n';
  out << "\\begin{table}[t]\n\\centering\n";
  if (!t.caption.empty())
    out << "\\caption{" << (t.caption_latex.empty() ? latex_escape(t.caption) : t.caption_latex)
        << "}\n";
  out << "\\begin{tabular}{";
  for (std::size_t i = 0; i < t.header.size(); ++i)
    out << (i < t.numeric.size() && t.numeric[i] ? 'r' : 'l');
  out << "}\n\\toprule\n";
  auto line = [&](const std::vector<Cell>& cells) {
    for (std::size_t i = 0; i < cells.size(); ++i) out << (i ? " & " : "") << latex_cell(cells[i]);
    out << " \\\\\n";
  };
  line(t.header);
  out << "\\midrule\n";
  for (const auto& row : t.rows) line(row);
  out << "\\bottomrule\n\\end{tabular}\n";
  if (!t.warnings.empty() || !t.notes.empty() || !t.unaveraged.empty() || !t.missing.empty()) {
    out << "\\par\\smallskip\n{\\footnotesize\n";
    for (const auto& w : t.warnings) out << "\\textbf{Warning:} " << latex_escape(w) << "\\\\\n";
    for (const auto& n : t.notes) out << latex_cell(n) << "\\\\\n";
    if (!t.unaveraged.empty()) {
      out << "Not averaged (incomplete runs):\\\\\n";
      for (const auto& u : t.unaveraged) out << "-- " << latex_cell(u) << "\\\\\n";
    }
    if (!t.missing.empty()) {
      out << "Missing (no result file yet):\\\\\n";
      for (const auto& m : t.missing) out << "-- " << latex_cell(m) << "\\\\\n";
    }
    out << "}\n";
  }
  out << "\\end{table}\n";
  return out.str();
}

}  // namespace flatface::reports
