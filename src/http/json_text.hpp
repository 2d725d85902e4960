// Writes JSON text straight into a response buffer: strings escaped as RFC 8259 asks, no DOM in between.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgmux::http {

// Appends `text` as a quoted JSON string. Postgres sends UTF-8 (pgmux asks for client_encoding UTF8), so
// bytes >= 0x80 pass through; only '"', '\\' and control characters need escaping.
void append_json_string(std::string& out, std::string_view text);

void append_json_int(std::string& out, std::int64_t value);

// `"key":` with the key escaped.
inline void append_json_key(std::string& out, std::string_view key) {
  append_json_string(out, key);
  out.push_back(':');
}

}  // namespace pgmux::http
