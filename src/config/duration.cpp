// parse_duration: "250ms", "30s", "5m", "1h" or bare seconds, as written in the config file.
#include <charconv>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "pgmux/config/config.hpp"

namespace pgmux::config {

Duration parse_duration(const std::string& text, const std::string& path) {
  auto invalid = [&]() -> ConfigError {
    return ConfigError(path + ": invalid duration \"" + text + "\" (use e.g. 500ms, 30s, 5m, 1h)");
  };

  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) throw invalid();  // also rejects "-5s": timeouts are never negative

  // Exact suffixes only: "30 s", "30sec" or "1.5h" would otherwise be guessed at.
  const std::string_view unit = std::string_view(text).substr(digits);
  std::int64_t ms_per_unit = 0;
  if (unit.empty() || unit == "s") {
    ms_per_unit = 1000;  // a bare number is seconds, as in PgBouncer
  } else if (unit == "ms") {
    ms_per_unit = 1;
  } else if (unit == "m") {
    ms_per_unit = 60'000;
  } else if (unit == "h") {
    ms_per_unit = 3'600'000;
  } else {
    throw invalid();
  }

  std::uint64_t value = 0;
  const std::errc ec = std::from_chars(text.data(), text.data() + digits, value).ec;
  const auto limit = static_cast<std::uint64_t>(std::numeric_limits<Duration::rep>::max() / ms_per_unit);
  if (ec != std::errc() || value > limit) {
    throw ConfigError(path + ": duration \"" + text + "\" is too large");
  }
  return Duration(static_cast<Duration::rep>(value) * ms_per_unit);
}

}  // namespace pgmux::config
