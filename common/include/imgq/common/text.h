// Small text helpers used across the tree (one definition each).
#pragma once

#include <algorithm>
#include <cctype>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace imgq {

// Levenshtein distance: the fewest single-character insertions, deletions
// and substitutions that turn `a` into `b` (for "did you mean").
inline size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// `s` with ASCII letters in lower case ("PNG" -> "png").
inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// The first `max` bytes of `bytes` as text for a message: printable ASCII
// as it is, any other byte as \xNN.
inline std::string printable(std::string_view bytes, size_t max) {
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (std::isprint(c)) {
      out += static_cast<char>(c);
    } else {
      constexpr char kHex[] = "0123456789abcdef";
      out += {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return out;
}

// The non-empty lines of `text` (how op lists travel inside a process and
// sit in the journal: one spec a line).
inline std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    if (end > start) lines.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// `lines` joined with '\n' (the inverse of split_lines for non-empty lines).
// `text` broken at spaces into lines of at most `columns` (a word longer
// than that stands alone), the lines after the first indented by `indent`
// spaces; `columns` 0: as it is.
inline std::string wrap_words(const std::string& text, size_t columns, size_t indent = 2) {
  if (columns == 0 || text.size() <= columns) return text;
  std::string out, line;
  size_t start = 0;
  auto flush = [&] {
    out += (out.empty() ? "" : "\n" + std::string(indent, ' ')) + line;
    line.clear();
  };
  while (start <= text.size()) {
    size_t end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    const std::string word = text.substr(start, end - start);
    const size_t room = columns - (out.empty() ? 0 : indent);
    if (!line.empty() && line.size() + 1 + word.size() > room) flush();
    line += (line.empty() ? "" : " ") + word;
    start = end + 1;
  }
  if (!line.empty()) flush();
  return out;
}

// A Unix time as "2026-12-01 21:30:05", in UTC (then followed by " UTC") or
// in the local time zone.
inline std::string time_text(double unix_seconds, bool utc) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  if (utc) {
    gmtime_r(&t, &tm);
  } else {
    localtime_r(&t, &tm);
  }
  char buf[40];
  std::strftime(buf, sizeof buf, utc ? "%Y-%m-%d %H:%M:%S UTC" : "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

inline std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines) {
    if (!out.empty()) out += '\n';
    out += line;
  }
  return out;
}

}  // namespace imgq
