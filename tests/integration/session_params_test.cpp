// In transaction mode each client keeps its own session settings although it shares backends with others.
#include <array>
#include <catch2/catch.hpp>

#include "libpq.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;

namespace {
std::string show(Connection& c, const std::string& setting) {
  return c.value("SHOW " + setting);
}
}  // namespace

TEST_CASE("startup settings of each client are applied on the one backend they share", "[params]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection latin(mux.conninfo() + " client_encoding=LATIN1 application_name=alpha");
  Connection plain(mux.conninfo() + " application_name=beta");
  REQUIRE(latin.ok());
  REQUIRE(plain.ok());
  CHECK(std::string(PQparameterStatus(latin.get(), "client_encoding")) == "LATIN1");
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    CHECK(show(latin, "client_encoding") == "LATIN1");
    CHECK(show(latin, "application_name") == "alpha");
    CHECK(show(plain, "client_encoding") == "UTF8");
    CHECK(show(plain, "application_name") == "beta");
  }
  CHECK(latin.value("SELECT pg_backend_pid()") == plain.value("SELECT pg_backend_pid()"));
  // The encoding is real: 'é' is one byte in LATIN1 and two in UTF-8.
  CHECK(latin.value("SELECT convert_to(chr(233), 'UTF8') = '\\xc3a9'::bytea") == "t");
  CHECK(latin.value("SELECT chr(233)") == "\xE9");
  CHECK(plain.value("SELECT chr(233)") == "\xC3\xA9");
}

TEST_CASE("a SET outside a transaction stays with its client and does not leak to the next one", "[params]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection a(mux.conninfo()), b(mux.conninfo());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  std::string server_default = show(b, "TimeZone");
  a.value("SET TimeZone = 'Asia/Tokyo'");
  a.value("SET DateStyle = 'German, DMY'");
  CHECK(show(a, "TimeZone") == "Asia/Tokyo");
  CHECK(show(b, "TimeZone") == server_default);
  CHECK(show(b, "DateStyle") == "ISO, MDY");
  CHECK(std::string(PQparameterStatus(b.get(), "TimeZone")) == server_default);
  // Extended protocol too, after the backend went back and forth.
  Result r(PQexecParams(a.get(), "SELECT current_setting($1)", 1, nullptr,
                        std::array<const char*, 1>{"TimeZone"}.data(), nullptr, nullptr, 0));
  REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == "Asia/Tokyo");
  CHECK(show(a, "DateStyle") == "German, DMY");
  // A newcomer finds the server's defaults.
  Connection c(mux.conninfo());
  REQUIRE(c.ok());
  CHECK(show(c, "TimeZone") == server_default);
}

TEST_CASE("a SET rolled back with its transaction is forgotten on both sides", "[params]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection a(mux.conninfo()), b(mux.conninfo());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  std::string server_default = show(a, "TimeZone");
  a.value("BEGIN");
  a.value("SET TimeZone = 'Europe/Paris'");
  CHECK(show(a, "TimeZone") == "Europe/Paris");
  a.value("ROLLBACK");
  CHECK(show(a, "TimeZone") == server_default);
  CHECK(show(b, "TimeZone") == server_default);
  CHECK(show(a, "TimeZone") == server_default);
}

TEST_CASE("settings passed in options=-c are applied like startup parameters", "[params]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection a(mux.conninfo() + " options='-c TimeZone=America/New_York -c DateStyle=SQL,DMY'");
  Connection b(mux.conninfo());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(show(a, "TimeZone") == "America/New_York");
  CHECK(show(b, "TimeZone") != "America/New_York");
  CHECK(show(a, "DateStyle") == "SQL, DMY");
}

TEST_CASE("a setting Postgres normalises is applied once, not before every transaction", "[params]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection a(mux.conninfo() + " options='-c DateStyle=SQL,DMY'");
  Connection b(mux.conninfo());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(show(a, "DateStyle") == "SQL, DMY");
  // With a's settings applied and nobody else in between, its next transactions need no SET (pgmux logs each
  // one it sends at debug level).
  auto sets_sent = [&] {
    std::string log = mux.log();
    std::size_t count = 0;
    for (std::size_t at = log.find("restoring a client's session setting"); at != std::string::npos;
         at = log.find("restoring a client's session setting", at + 1))
      ++count;
    return count;
  };
  std::size_t before = sets_sent();
  for (int i = 0; i < 10; ++i) CHECK(show(a, "DateStyle") == "SQL, DMY");
  CHECK(sets_sent() == before);
  CHECK(show(b, "DateStyle") == "ISO, MDY");  // b needs one
  CHECK(sets_sent() == before + 1);
}

TEST_CASE("an invalid startup setting is ignored alone: the client's valid ones still apply", "[params]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection odd(mux.conninfo() + " client_encoding=LATIN1 options='-c TimeZone=Mars/Olympus_Mons'");
  Connection plain(mux.conninfo());
  REQUIRE(odd.ok());
  REQUIRE(plain.ok());
  std::string server_zone = show(plain, "TimeZone");
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    CHECK(show(odd, "client_encoding") == "LATIN1");
    CHECK(show(odd, "TimeZone") == server_zone);
    CHECK(show(plain, "client_encoding") == "UTF8");
  }
  // Tried once, then dropped: not on every transaction.
  std::string log = mux.log();
  std::size_t warnings = 0;
  for (auto at = log.find("TimeZone could not be set"); at != std::string::npos;
       at = log.find("TimeZone could not be set", at + 1))
    ++warnings;
  CHECK(warnings == 1);
}
