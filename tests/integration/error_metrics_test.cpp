// Errors Postgres sends to clients through pgmux are counted by SQLSTATE class.
#include <catch2/catch.hpp>

#include "bounded.hpp"
#include "http_get.hpp"
#include "libpq.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;

TEST_CASE("/metrics counts the errors clients received by SQLSTATE class", "[http][metrics]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 2, .http = true});
  Connection c(mux.conninfo());
  REQUIRE(c.ok());
  CHECK(exec_bounded(c.get(), "SELECT 1/0").sqlstate == "22012");
  CHECK(exec_bounded(c.get(), "SELECT 'x'::int").sqlstate == "22P02");
  CHECK(exec_bounded(c.get(), "SELEC 1").sqlstate == "42601");
  Result extended(
      PQexecParams(c.get(), "SELECT * FROM no_such_table", 0, nullptr, nullptr, nullptr, nullptr, 0));
  CHECK(sqlstate_of(extended.get()) == "42P01");
  CHECK(exec_bounded(c.get(), "SELECT 1").ok());
  std::string page = http_get(mux.http_port(), "/metrics").body;
  INFO(page.substr(0, 4000));
  CHECK(sample(page, "pgmux_server_errors_total{class=\"22\",database=\"app\",user=\"app\"}") == 2);
  CHECK(sample(page, "pgmux_server_errors_total{class=\"42\",database=\"app\",user=\"app\"}") == 2);
  CHECK(sample(page, "pgmux_server_errors_total{class=\"23\",database=\"app\",user=\"app\"}") == -1);
}
