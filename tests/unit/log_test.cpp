// The JSON log format: every line a JSON object whatever bytes the message carries.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "log.hpp"

using pgmux::log::append_json_string;

namespace {
std::string parsed_back(std::string_view text) {
  std::string quoted;
  append_json_string(quoted, text);
  return std::string(boost::json::parse(quoted).as_string());
}
}  // namespace

TEST_CASE("a log message as a JSON string keeps quotes, backslashes, newlines and UTF-8", "[log]") {
  const std::string_view texts[] = {"plain",
                                    "say \"hi\"",
                                    "C:\\dir",
                                    "two\nlines\ttab\r",
                                    "caf\xc3\xa9 \xe2\x82\xac",
                                    "\xf0\x9f\x90\x98",
                                    std::string_view("nul\0byte", 8),
                                    "\x01\x1f\x7f"};
  for (std::string_view text : texts) CHECK(parsed_back(text) == text);
}

TEST_CASE("bytes that are not UTF-8 become U+FFFD, so the line still parses", "[log]") {
  CHECK(parsed_back("user=\xff\xfe") == "user=\xef\xbf\xbd\xef\xbf\xbd");
  CHECK(parsed_back("\xc0\xaf") == "\xef\xbf\xbd\xef\xbf\xbd");                  // overlong '/'
  CHECK(parsed_back("\xed\xa0\x80") == "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // a surrogate
  CHECK(parsed_back("cut \xe2\x82") == "cut \xef\xbf\xbd\xef\xbf\xbd");          // a truncated sequence
}

TEST_CASE("log formats are text and json", "[log]") {
  pgmux::log::Format format;
  CHECK(pgmux::log::parse_format("json", format));
  CHECK(format == pgmux::log::Format::json);
  CHECK(pgmux::log::parse_format("text", format));
  CHECK(format == pgmux::log::Format::text);
  CHECK_FALSE(pgmux::log::parse_format("JSON", format));
}
