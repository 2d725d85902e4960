// One line per event on stderr, with a timestamp and a level: plain text, or one JSON object per line.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace pgmux::log {

enum class Level { debug, info, warning, error };
// text: `2026-01-02T03:04:05.678Z INFO message`; json: `{"ts":"2026-01-02T03:04:05.678Z","level":"info",
// "msg":"message"}`, for log shippers that would otherwise have to split the text.
enum class Format { text, json };

void set_level(Level level);
bool parse_level(std::string_view text, Level& level);
bool enabled(Level level);
void set_format(Format format);
bool parse_format(std::string_view text, Format& format);
// `text` as a quoted JSON string: control characters escaped, and bytes that are not UTF-8 (a client's user
// name can be anything) replaced by U+FFFD, so that every line parses.
void append_json_string(std::string& out, std::string_view text);
void write(Level level, std::string_view line);

template <class... Parts>
void emit(Level level, const Parts&... parts) {
  if (!enabled(level)) return;
  std::ostringstream line;
  (line << ... << parts);
  write(level, line.str());
}

template <class... Parts>
void debug(const Parts&... parts) {
  emit(Level::debug, parts...);
}
template <class... Parts>
void info(const Parts&... parts) {
  emit(Level::info, parts...);
}
template <class... Parts>
void warning(const Parts&... parts) {
  emit(Level::warning, parts...);
}
template <class... Parts>
void error(const Parts&... parts) {
  emit(Level::error, parts...);
}

}  // namespace pgmux::log
