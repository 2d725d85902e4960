// Reads the first words of a simple query's text, the only SQL pgmux looks at: it never parses SQL.
#include "pgmux/protocol/sql_keywords.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "pgmux/protocol/session_params.hpp"

namespace pgmux::protocol {
namespace {

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c;
}
bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool matches_at(std::string_view hay, std::size_t at, std::string_view needle) {
  for (std::size_t j = 0; j < needle.size(); ++j)
    if (lower(hay[at + j]) != needle[j]) return false;
  return true;
}

// `needle` in lower case.
bool contains_ignoring_case(std::string_view hay, std::string_view needle) {
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i)
    if (matches_at(hay, i, needle)) return true;
  return false;
}

// Which of the names that matter anywhere in a query appear in it, in one scan: each has one '_', rarer in
// SQL than any letter, so memchr finds the few places worth comparing (this runs on every query).
struct Mentions {
  bool advisory_lock = false, search_path = false, set_config = false;
};

bool named_around(std::string_view hay, std::size_t underscore, std::string_view needle, std::size_t pivot) {
  return underscore >= pivot && underscore - pivot + needle.size() <= hay.size() &&
         matches_at(hay, underscore - pivot, needle);
}

Mentions mentions(std::string_view sql) {
  Mentions said;
  const char* const begin = sql.data();
  const char* const end = begin + sql.size();
  for (const char* p = begin; (p = static_cast<const char*>(std::memchr(p, '_', end - p))); ++p) {
    const std::size_t at = p - begin;
    said.advisory_lock = said.advisory_lock || named_around(sql, at, "advisory_lock", 8);
    said.search_path = said.search_path || named_around(sql, at, "search_path", 6);
    said.set_config = said.set_config || named_around(sql, at, "set_config", 3);
  }
  return said;
}

}  // namespace

std::string_view skip_space_and_comments(std::string_view sql) {
  for (;;) {
    std::size_t i = 0;
    while (i < sql.size() && is_space(sql[i])) ++i;
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
  // At the start of each statement; a ';' inside a literal may start a false one, which errs towards yes.
  for (std::size_t start = 0;;) {
    std::string_view rest = skip_space_and_comments(sql.substr(start)), probe = rest;
    if (!rest.empty() && lower(rest[0]) == 'd' &&
        (take_keyword(probe, "discard") || (probe = rest, take_keyword(probe, "deallocate"))))
      return true;
    start = sql.find(';', start);
    if (start == std::string_view::npos) return false;
    ++start;
  }
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

namespace {

bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}

// The next word (a name, maybe dotted: custom settings are "ext.name"), consumed; "" if none.
std::string_view take_name(std::string_view& sql) {
  std::string_view rest = skip_space_and_comments(sql);
  std::size_t n = 0;
  while (n < rest.size() && (is_word_char(rest[n]) || rest[n] == '.' || rest[n] == '$')) ++n;
  if (n == 0 || !is_name_start(rest[0])) return {};
  sql = rest.substr(n);
  return rest.substr(0, n);
}

// After the statement: nothing, or a ';' and nothing. A query that goes on is another statement.
bool at_statement_end(std::string_view rest) {
  rest = skip_space_and_comments(rest);
  if (!rest.empty() && rest[0] == ';') rest = skip_space_and_comments(rest.substr(1));
  return rest.empty() || rest[0] == '\0';
}

// A ';' with something after it (a literal containing one counts too: this errs towards yes).
bool has_second_statement(std::string_view sql) {
  for (std::size_t at = sql.find(';'); at != std::string_view::npos; at = sql.find(';', at + 1))
    if (!at_statement_end(sql.substr(at))) return true;
  return false;
}

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

SessionEffect pins(std::string_view what) {
  return {SessionEffect::Kind::pins, what, {}};
}

SessionEffect set_effect(std::string_view rest) {
  if (take_keyword(rest, "local")) return {};  // ends with the transaction
  bool session = take_keyword(rest, "session");
  if (session && take_keyword(rest, "authorization")) return pins("SET SESSION AUTHORIZATION");
  if (session && take_keyword(rest, "characteristics")) return pins("SET SESSION CHARACTERISTICS");
  std::string_view name = take_name(rest);
  if (name.empty()) return pins("SET");
  if (equal_ignoring_case(name, "transaction") || equal_ignoring_case(name, "constraints")) return {};
  if (equal_ignoring_case(name, "names")) return {};  // client_encoding, reported by the server
  if (equal_ignoring_case(name, "time") && take_keyword(rest, "zone")) return {};  // TimeZone, likewise
  if (equal_ignoring_case(name, "role")) return pins("SET ROLE");
  if (equal_ignoring_case(name, "search_path")) {
    if (!take_keyword(rest, "to")) {
      std::string_view r = skip_space_and_comments(rest);
      if (r.empty() || r[0] != '=') return pins("SET search_path");
      rest = r.substr(1);
    }
    std::string_view list = search_path_list(rest);
    if (list.empty()) return pins("SET search_path");
    // With pg_temp listed, a plain CREATE TABLE may make a temporary one.
    if (contains_ignoring_case(list, "pg_temp")) return pins("SET search_path with pg_temp");
    if (equal_ignoring_case(list, "default")) return {SessionEffect::Kind::resets_search_path, {}, {}};
    return {SessionEffect::Kind::sets_search_path, {}, list};
  }
  auto tracked = tracked_param(name);
  if (tracked && *tracked != TrackedParam::search_path) return {};  // followed through ParameterStatus
  return pins("SET of a setting pgmux does not carry between server connections");
}

// The statement's first word, lower-cased into `out` when it is short enough to be one of the keywords that
// matter; "" otherwise. One scan, instead of trying each keyword in turn on every query.
std::string_view first_keyword(std::string_view sql, char (&out)[8]) {
  std::string_view rest = skip_space_and_comments(sql);
  std::size_t n = 0;
  while (n < rest.size() && is_word_char(rest[n])) {
    if (n == sizeof out) return {};
    out[n] = lower(rest[n]);
    ++n;
  }
  return {out, n};
}

// INTO [LOCAL | GLOBAL] TEMP or TEMPORARY, or INTO [TABLE] pg_temp.t, anywhere: SELECT ... INTO makes a
// temporary table so. Looked for on every SELECT, so by the 'i's memchr finds rather than at each position.
bool selects_into_temp(std::string_view sql) {
  const char* const begin = sql.data();
  const char* const end = begin + sql.size();
  for (char initial : {'i', 'I'}) {
    for (const char* p = begin; (p = static_cast<const char*>(std::memchr(p, initial, end - p))); ++p) {
      if (p > begin && is_word_char(p[-1])) continue;
      std::string_view rest(p, end - p);
      if (!take_keyword(rest, "into")) continue;
      (take_keyword(rest, "local") || take_keyword(rest, "global"));
      if (take_keyword(rest, "temp") || take_keyword(rest, "temporary")) return true;
      (take_keyword(rest, "unlogged"), take_keyword(rest, "table"));
      if (take_keyword(rest, "pg_temp")) return true;
    }
  }
  return false;
}

// EXPLAIN runs its statement only with ANALYZE (ANALYSE), given as a word or in the option list. Errs towards
// yes: "(ANALYZE false)" counts.
bool explain_runs(std::string_view& rest) {
  std::string_view options = skip_space_and_comments(rest);
  if (!options.empty() && options[0] == '(') {
    const std::size_t close = options.find(')');
    if (close == std::string_view::npos) return false;  // not valid SQL: Postgres refuses it
    rest = options.substr(close + 1);
    return contains_ignoring_case(options.substr(0, close), "analy");
  }
  return take_keyword(rest, "analyze") || take_keyword(rest, "analyse");
}

SessionEffect first_statement_effect(std::string_view sql) {
  static constexpr std::string_view kWords[] = {"set",    "reset",   "listen",  "prepare", "load",
                                                "create", "declare", "discard", "explain"};
  char buffer[8];
  const std::string_view word = first_keyword(sql, buffer);
  // A SELECT may be in parentheses, and then has no first word.
  if (word == "select" || word == "with" || (word.empty() && skip_space_and_comments(sql).starts_with('(')))
    return selects_into_temp(sql) ? pins("SELECT ... INTO TEMP") : SessionEffect{};
  if (std::find(std::begin(kWords), std::end(kWords), word) == std::end(kWords))
    return {};  // INSERT, UPDATE, BEGIN, COMMIT, ...: the common case ends here
  std::string_view rest = sql;
  if (take_keyword(rest, word)) {
    if (word == "listen") return pins("LISTEN");
    if (word == "prepare") return pins("PREPARE");
    if (word == "declare")
      return contains_ignoring_case(rest, "hold") ? pins("DECLARE ... WITH HOLD") : SessionEffect{};
    if (word == "create") {
      if (take_keyword(rest, "or")) take_keyword(rest, "replace");
      (take_keyword(rest, "global") || take_keyword(rest, "local"));
      if (take_keyword(rest, "temp") || take_keyword(rest, "temporary")) return pins("CREATE TEMP");
      // CREATE TABLE pg_temp.t, CREATE FUNCTION pg_temp.f(): temporary all the same.
      if (contains_ignoring_case(rest, "pg_temp")) return pins("CREATE in schema pg_temp");
      return {};
    }
    if (word == "explain") {
      if (!explain_runs(rest)) return {};
      (take_keyword(rest, "verbose"));
      SessionEffect explained = first_statement_effect(rest);
      return explained.kind == SessionEffect::Kind::pins ? explained : SessionEffect{};
    }
    if (word == "load") return pins("LOAD");
    if (word == "set") return set_effect(rest);
    if (word == "reset") {
      std::string_view name = take_name(rest);
      if (equal_ignoring_case(name, "all") || equal_ignoring_case(name, "search_path"))
        return at_statement_end(rest) ? SessionEffect{SessionEffect::Kind::resets_search_path, {}, {}}
                                      : pins("RESET");
      return {};
    }
    if (word == "discard" && take_keyword(rest, "all") && at_statement_end(rest))
      return {SessionEffect::Kind::resets_search_path, {}, {}};
  }
  return {};
}

// The arguments of the call whose '(' `text` starts after white space: each trimmed, split at the commas
// outside quotes and parentheses. Empty if there is no '(' or no closing ')'.
std::vector<std::string_view> call_arguments(std::string_view text) {
  text = skip_space_and_comments(text);
  if (text.empty() || text[0] != '(') return {};
  std::vector<std::string_view> arguments;
  std::size_t start = 1;
  int depth = 0;
  for (std::size_t i = 1; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\'' || c == '"') {  // to the closing quote; a doubled one is inside, and skipped twice
      const std::size_t close = text.find(c, i + 1);
      if (close == std::string_view::npos) return {};
      i = close;
    } else if (c == '(') {
      ++depth;
    } else if ((c == ',' && depth == 0) || (c == ')' && depth-- == 0)) {
      std::string_view argument = skip_space_and_comments(text.substr(start, i - start));
      while (!argument.empty() && is_space(argument.back())) argument.remove_suffix(1);
      arguments.push_back(argument);
      if (c == ')') return arguments;
      start = i + 1;
    }
  }
  return {};
}

// A literal that is certainly boolean true, as set_config's is_local is written.
bool is_true(std::string_view value) {
  for (std::string_view yes : {"true", "'true'", "'t'", "'on'", "'yes'", "'1'"})
    if (equal_ignoring_case(value, yes)) return true;
  return false;
}

// set_config(name, value, is_local) anywhere in the text. Local is the transaction's, which the client holds
// its backend for anyway; a setting Postgres reports (TimeZone, application_name, ...) is followed as SET's
// is. Any other call, or one whose name or is_local is not a plain literal, changes the session in a way
// pgmux cannot carry: it pins. search_path is left to the caller's rule.
SessionEffect set_config_effect(std::string_view sql) {
  for (std::size_t at = 0; (at = sql.find('_', at)) != std::string_view::npos; ++at) {
    if (!named_around(sql, at, "set_config", 3)) continue;
    const std::vector<std::string_view> arguments = call_arguments(sql.substr(at + 7));
    if (arguments.size() != 3) return pins("set_config of a setting pgmux does not carry");
    if (is_true(arguments[2])) continue;
    const std::string_view name = arguments[0];  // a tracked one is followed; search_path: the caller's rule
    const bool literal = name.size() >= 2 && name.front() == '\'' && name.back() == '\'';
    if (literal && tracked_param(name.substr(1, name.size() - 2))) continue;
    return pins("set_config of a setting pgmux does not carry");
  }
  return {};
}

// The whole classification; session_effect adds whether it may outlive a failure.
SessionEffect classify(std::string_view sql) {
  SessionEffect effect = first_statement_effect(sql);
  if (effect.kind == SessionEffect::Kind::pins) return effect;
  const Mentions said = mentions(sql);
  // pg_advisory_lock, pg_try_advisory_lock and their _shared forms hold until the session ends; the
  // transaction-level ones are spelled advisory_xact_lock.
  if (said.advisory_lock) {
    SessionEffect lock = pins("a session-level advisory lock");
    lock.survives_failure = true;
    return lock;
  }
  if (said.set_config) {
    SessionEffect set = set_config_effect(sql);
    if (set.kind == SessionEffect::Kind::pins) return set;
  }
  // SHOW search_path or current_setting('search_path') are harmless; set_config, or a SET hidden behind
  // another statement, is not.
  if (effect.kind == SessionEffect::Kind::none && said.search_path &&
      (said.set_config || has_second_statement(sql)))
    return pins("a change of search_path pgmux cannot follow");
  return effect;
}

}  // namespace

SessionEffect session_effect(std::string_view sql) {
  SessionEffect effect = classify(sql);
  if (effect.kind != SessionEffect::Kind::none && !effect.survives_failure)
    effect.survives_failure = has_second_statement(sql);
  return effect;
}

SessionEffect session_effect_of_later_text(std::string_view text) {
  const Mentions said = mentions(text);
  if (said.advisory_lock) return pins("a session-level advisory lock, far into a long query");
  if (said.set_config || said.search_path) return pins("set_config or search_path, far into a long query");
  if (selects_into_temp(text)) return pins("SELECT ... INTO TEMP, far into a long query");
  return {};
}

std::string deallocate_target(std::string_view sql) {
  std::string_view rest = sql;
  if (!take_keyword(rest, "deallocate")) return {};
  take_keyword(rest, "prepare");
  rest = skip_space_and_comments(rest);
  std::string name;
  if (!rest.empty() && rest[0] == '"') {  // a quoted name: as written, quotes doubled inside
    std::size_t i = 1;
    for (;; ++i) {
      if (i >= rest.size() || rest[i] == '\0') return {};
      if (rest[i] == '"') {
        if (i + 1 < rest.size() && rest[i + 1] == '"') {
          name += '"';
          ++i;
          continue;
        }
        break;
      }
      name += rest[i];
    }
    rest.remove_prefix(i + 1);
  } else {
    std::string_view word = take_name(rest);
    if (word.empty() || word.find('.') != std::string_view::npos || equal_ignoring_case(word, "all"))
      return {};
    for (char c : word) name += lower(c);
  }
  return name.empty() || !at_statement_end(rest) ? std::string() : name;
}

std::string_view search_path_list(std::string_view list) {
  list = skip_space_and_comments(list);
  std::size_t i = 0, end = 0;
  bool want_item = true;
  while (i < list.size() && list[i] != ';' && list[i] != '\0') {
    char c = list[i];
    if (std::strchr(" \t\r\n", c)) {
      ++i;
      continue;
    }
    if (want_item) {
      if (c == '"' || c == '\'') {  // a quoted name or a literal, quote doubled inside
        std::size_t j = i + 1;
        for (;;) {
          if (j >= list.size() || list[j] == '\0') return {};
          if (list[j] == c) {
            if (j + 1 < list.size() && list[j + 1] == c) {
              j += 2;
              continue;
            }
            break;
          }
          if (c == '\'' && list[j] == '\\') return {};  // its meaning depends on standard_conforming_strings
          ++j;
        }
        i = j + 1;
      } else if (is_name_start(c)) {
        while (i < list.size() && (is_word_char(list[i]) || list[i] == '$')) ++i;
      } else {
        return {};
      }
      end = i;
      want_item = false;
    } else {
      if (c != ',') return {};
      want_item = true;
      ++i;
    }
  }
  if (want_item) return {};
  if (!at_statement_end(list.substr(i))) return {};  // another statement follows
  return list.substr(0, end);
}

}  // namespace pgmux::protocol
