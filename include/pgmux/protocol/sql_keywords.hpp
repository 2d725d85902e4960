// Reads the first words of a simple query's text, the only SQL pgmux looks at: it never parses SQL.
#pragma once

#include <string_view>

namespace pgmux::protocol {

// The text could drop prepared statements on the server (DEALLOCATE, DISCARD anywhere in it, in any case).
// Errs towards yes: a false yes costs a re-prepare, a false no would leave pgmux believing in a statement the
// server no longer has.
bool may_drop_statements(std::string_view sql);

// The whole text is DEALLOCATE [PREPARE] ALL or DISCARD ALL: every prepared statement of the session goes.
bool drops_all_statements(std::string_view sql);

// The text with leading white space and comments skipped.
std::string_view skip_space_and_comments(std::string_view sql);

// Consumes the next word (letters, digits, underscores) if it equals `word` ignoring case.
bool take_keyword(std::string_view& sql, std::string_view word);

}  // namespace pgmux::protocol
