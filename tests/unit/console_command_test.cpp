// How the admin console splits a command: keywords matched in any case, database names kept as typed.
#include <catch2/catch.hpp>

#include "admin/console.hpp"
#include "pool/pool.hpp"

using pgmux::admin::parse_console_command;

TEST_CASE("a console command is split into words, without the trailing semicolon", "[admin]") {
  auto c = parse_console_command("  show   clients ;");
  REQUIRE(c.words.size() == 2);
  CHECK(c.upper(0) == "SHOW");
  CHECK(c.upper(1) == "CLIENTS");
  CHECK(c.upper(2) == "");  // past the end: no word
  CHECK(parse_console_command("").words.empty());
  CHECK(parse_console_command(" ; SHOW POOLS").words.empty());  // only the first statement counts
}

TEST_CASE("database names keep their case, and quotes let a name hold spaces", "[admin]") {
  auto c = parse_console_command("pause MyDb");
  REQUIRE(c.words.size() == 2);
  CHECK(c.upper(0) == "PAUSE");
  CHECK(c.words[1] == "MyDb");
  auto quoted = parse_console_command("KILL \"my db\";");
  REQUIRE(quoted.words.size() == 2);
  CHECK(quoted.words[1] == "my db");
  auto unterminated = parse_console_command("RESUME \"half");
  REQUIRE(unterminated.words.size() == 2);
  CHECK(unterminated.words[1] == "half");
}

TEST_CASE("a failed server login is counted under the reason its SQLSTATE class gives", "[metrics]") {
  using pgmux::pool::connect_failure_index;
  using pgmux::pool::kConnectFailureNames;
  CHECK(std::string(kConnectFailureNames[connect_failure_index("08006")]) == "unreachable");
  CHECK(std::string(kConnectFailureNames[connect_failure_index("28P01")]) == "auth_failed");
  CHECK(std::string(kConnectFailureNames[connect_failure_index("53300")]) == "server_full");
  CHECK(std::string(kConnectFailureNames[connect_failure_index("57P03")]) == "server_unavailable");
  CHECK(std::string(kConnectFailureNames[connect_failure_index("XX000")]) == "other");
  CHECK(std::string(kConnectFailureNames[connect_failure_index("")]) == "other");
}
