// One line per event on stderr, with a timestamp and a level: plain text, or one JSON object per line.
#include "log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace pgmux::log {
namespace {
std::atomic<Level> g_level{Level::info};
std::atomic<Format> g_format{Format::text};
const char* name_of(Level level) {
  switch (level) {
    case Level::debug:
      return "DEBUG";
    case Level::info:
      return "INFO";
    case Level::warning:
      return "WARNING";
    case Level::error:
      return "ERROR";
  }
  return "?";
}
const char* json_name_of(Level level) {
  switch (level) {
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warning:
      return "warning";
    case Level::error:
      return "error";
  }
  return "?";
}

// The length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629: no overlong forms, no
// surrogates, nothing past U+10FFFF), or 0.
std::size_t utf8_sequence(std::string_view s) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = byte(0);
  std::size_t length;
  unsigned char low = 0x80, high = 0xbf;  // the range of the second byte
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  if (s.size() < length || byte(1) < low || byte(1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i)
    if ((byte(i) & 0xc0) != 0x80) return 0;
  return length;
}

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (std::size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      std::size_t n = utf8_sequence(text.substr(i));
      if (n == 0) {
        out.append("\\ufffd");
        ++i;
      } else {
        out.append(text, i, n);
        i += n;
      }
      continue;
    }
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out.append("\\n");
    } else if (c < 0x20 || c == 0x7f) {
      const char escaped[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
      out.append(escaped, 6);
    } else {
      out.push_back(static_cast<char>(c));
    }
    ++i;
  }
  out.push_back('"');
}

void set_format(Format format) {
  g_format.store(format, std::memory_order_relaxed);
}

bool parse_format(std::string_view text, Format& format) {
  if (text == "text")
    format = Format::text;
  else if (text == "json")
    format = Format::json;
  else
    return false;
  return true;
}

void set_level(Level level) {
  g_level.store(level, std::memory_order_relaxed);
}

bool parse_level(std::string_view text, Level& level) {
  if (text == "debug")
    level = Level::debug;
  else if (text == "info")
    level = Level::info;
  else if (text == "warning")
    level = Level::warning;
  else if (text == "error")
    level = Level::error;
  else
    return false;
  return true;
}

bool enabled(Level level) {
  return level >= g_level.load(std::memory_order_relaxed);
}

void write(Level level, std::string_view line) {
  using namespace std::chrono;
  auto now = system_clock::now();
  std::time_t seconds = system_clock::to_time_t(now);
  auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc;
  gmtime_r(&seconds, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  char stamp_ms[40];
  std::snprintf(stamp_ms, sizeof stamp_ms, "%s.%03dZ", stamp, static_cast<int>(millis));
  // One fwrite/fprintf per line: stdio locks the stream, so lines from different threads never interleave.
  if (g_format.load(std::memory_order_relaxed) == Format::json) {
    std::string out = "{\"ts\":\"";
    out.append(stamp_ms);
    out.append("\",\"level\":\"");
    out.append(json_name_of(level));
    out.append("\",\"msg\":");
    append_json_string(out, line);
    out.append("}\n");
    std::fwrite(out.data(), 1, out.size(), stderr);
    return;
  }
  std::fprintf(stderr, "%s %s %.*s\n", stamp_ms, name_of(level), static_cast<int>(line.size()), line.data());
}

}  // namespace pgmux::log
