// Reads the first words of a simple query's text, the only SQL pgmux looks at: it never parses SQL.
#pragma once

#include <string>
#include <string_view>

namespace pgmux::protocol {

// A statement of the text starts with DEALLOCATE or DISCARD: it could drop prepared statements on the server.
// Errs towards yes: a false yes costs a re-prepare, a false no would leave pgmux believing in a statement the
// server no longer has (pgmux also recovers from that, at the cost of one client's error).
bool may_drop_statements(std::string_view sql);

// The whole text is DEALLOCATE [PREPARE] ALL or DISCARD ALL: every prepared statement of the session goes.
bool drops_all_statements(std::string_view sql);

// What a statement does to session state that transaction pooling cannot carry by itself.
struct SessionEffect {
  enum class Kind {
    none,
    pins,                // state only this backend can hold (LISTEN, temp tables, ...): see `what`
    sets_search_path,    // SET [SESSION] search_path TO `value`, a list validated by search_path_list
    resets_search_path,  // RESET search_path, RESET ALL, DISCARD ALL
  } kind = Kind::none;
  std::string_view what;   // pins: a short description for the log and the error
  std::string_view value;  // sets_search_path
  // The effect may stay even if the query fails: another statement may have committed it before the one
  // that failed, or it is a session advisory lock, which no rollback releases.
  bool survives_failure = false;
};

// Classifies the first statement of `sql` by its first words, plus scans of the whole text for session
// advisory locks, set_config calls (pinning unless local or of a followed setting) and, in a SELECT, INTO
// TEMP. It never parses SQL: statements after the first are not seen, except that any other mention of
// search_path counts as pinning (a search_path pgmux cannot follow must not reach another client).
SessionEffect session_effect(std::string_view sql);

// For a statement too long to be read whole: whether a later piece of its text names what the whole-text
// scans of session_effect look for (a session advisory lock, set_config, search_path, INTO TEMP). Pieces are
// read apart, so a name cut by a piece's end is missed unless the caller overlaps them; any set_config or
// search_path pins, its call not being read.
SessionEffect session_effect_of_later_text(std::string_view text);

// The statement name of a text that is exactly DEALLOCATE [PREPARE] name (not ALL), case-folded as Postgres
// folds identifiers; "" otherwise.
std::string deallocate_target(std::string_view sql);

// `list` (white space around it allowed) as a search_path value pgmux can replay: names, quoted names or
// string literals separated by commas, up to the end or a ';'. The trimmed list, or "" if it is anything
// else.
std::string_view search_path_list(std::string_view list);

// The text with leading white space and comments skipped.
std::string_view skip_space_and_comments(std::string_view sql);

// Consumes the next word (letters, digits, underscores) if it equals `word` ignoring case.
bool take_keyword(std::string_view& sql, std::string_view word);

}  // namespace pgmux::protocol
