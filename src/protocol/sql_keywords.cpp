// Reads the first words of a simple query's text, the only SQL pgmux looks at: it never parses SQL.
#include "pgmux/protocol/sql_keywords.hpp"

#include <cstring>

namespace pgmux::protocol {
namespace {

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c;
}
bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}

// `needle` in lower case.
bool contains_ignoring_case(std::string_view hay, std::string_view needle) {
  if (hay.size() < needle.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    if (lower(hay[i]) != needle[0]) continue;
    std::size_t j = 1;
    while (j < needle.size() && lower(hay[i + j]) == needle[j]) ++j;
    if (j == needle.size()) return true;
  }
  return false;
}

}  // namespace

std::string_view skip_space_and_comments(std::string_view sql) {
  for (;;) {
    std::size_t i = 0;
    while (i < sql.size() && std::strchr(" \t\r\n\f\v", sql[i]) && sql[i] != '\0') ++i;
    sql.remove_prefix(i);
    if (sql.starts_with("--")) {
      std::size_t end = sql.find('\n');
      sql.remove_prefix(end == std::string_view::npos ? sql.size() : end + 1);
    } else if (sql.starts_with("/*")) {
      // Postgres nests block comments.
      int depth = 0;
      std::size_t j = 0;
      do {
        if (sql.substr(j, 2) == "/*") {
          ++depth;
          j += 2;
        } else if (sql.substr(j, 2) == "*/") {
          --depth;
          j += 2;
        } else {
          ++j;
        }
      } while (depth > 0 && j < sql.size());
      sql.remove_prefix(j);
    } else {
      return sql;
    }
  }
}

bool take_keyword(std::string_view& sql, std::string_view word) {
  std::string_view rest = skip_space_and_comments(sql);
  if (rest.size() < word.size()) return false;
  for (std::size_t i = 0; i < word.size(); ++i)
    if (lower(rest[i]) != word[i]) return false;
  if (rest.size() > word.size() && is_word_char(rest[word.size()])) return false;
  sql = rest.substr(word.size());
  return true;
}

bool may_drop_statements(std::string_view sql) {
  return contains_ignoring_case(sql, "discard") || contains_ignoring_case(sql, "deallocate");
}

bool drops_all_statements(std::string_view sql) {
  std::string_view rest = sql;
  bool matched =
      (take_keyword(rest, "deallocate") && (take_keyword(rest, "prepare"), take_keyword(rest, "all"))) ||
      (rest = sql, take_keyword(rest, "discard") && take_keyword(rest, "all"));
  if (!matched) return false;
  rest = skip_space_and_comments(rest);
  if (!rest.empty() && rest[0] == ';') rest = skip_space_and_comments(rest.substr(1));
  return rest.empty() || rest[0] == '\0';
}

}  // namespace pgmux::protocol
