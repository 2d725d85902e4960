// One line per event on stderr, with a timestamp and a level.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace pgmux::log {

enum class Level { debug, info, warning, error };

void set_level(Level level);
bool parse_level(std::string_view text, Level& level);
bool enabled(Level level);
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
