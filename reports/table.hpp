// A format-neutral table (header, cells with bold marks, notes) and its Markdown and LaTeX forms.
#pragma once

#include <string>
#include <vector>

namespace flatface::reports {

struct Cell {
  std::string text;   // Markdown / plain text
  std::string latex;  // LaTeX source; empty: `text`, escaped
  bool bold = false;
};

struct Table {
  std::string caption;
  std::string caption_latex;  // empty: `caption`, escaped
  std::vector<Cell> header;
  std::vector<bool> numeric;  // per column: right-aligned
  std::vector<std::vector<Cell>> rows;
  std::vector<std::string> warnings;  // shown above the table
  std::vector<Cell> notes;            // footnotes, shown below
  std::vector<Cell> unaveraged;       // runs left out of the averages, listed below the notes
  std::vector<Cell> missing;          // runs of the grid without a result yet, listed last
};

std::string render_markdown(const Table& t);
std::string render_latex(const Table& t);  // a booktabs table environment

std::string latex_escape(const std::string& text);

}  // namespace flatface::reports
