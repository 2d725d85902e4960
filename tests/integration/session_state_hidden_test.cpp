// Session state made by statements whose first words do not say so (a temporary view, a SELECT INTO TEMP,
// set_config of the session) pins the client as SET and CREATE TEMP do: it never reaches the next client of
// that backend. One backend, so that the next client gets the same one; the first client leaves before it
// comes.
#include <catch2/catch.hpp>

#include "bounded.hpp"
#include "libpq.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;

TEST_CASE("a temporary view made by CREATE OR REPLACE TEMP VIEW never reaches another client",
          "[session_state]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  INFO(mux.log_tail());
  {
    Connection a(mux.conninfo());
    REQUIRE(a.ok());
    REQUIRE(exec_bounded(a.get(), "CREATE OR REPLACE TEMP VIEW gap_view AS SELECT 'a'::text AS who").ok());
    CHECK(exec_bounded(a.get(), "SELECT who FROM gap_view").value() == "a");
  }
  Connection b(mux.conninfo());
  REQUIRE(b.ok());
  Outcome seen = exec_bounded(b.get(), "SELECT who FROM gap_view");
  CHECK(seen.sqlstate == "42P01");  // undefined_table: b has no such view
  CHECK(seen.value() == "");
}

TEST_CASE("a temporary table made by SELECT ... INTO TEMP never reaches another client", "[session_state]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  INFO(mux.log_tail());
  {
    Connection a(mux.conninfo());
    REQUIRE(a.ok());
    REQUIRE(exec_bounded(a.get(), "SELECT 'a'::text AS who INTO TEMP TABLE gap_into").ok());
  }
  Connection b(mux.conninfo());
  REQUIRE(b.ok());
  Outcome seen = exec_bounded(b.get(), "SELECT who FROM gap_into");
  CHECK(seen.sqlstate == "42P01");
  CHECK(seen.value() == "");
}

TEST_CASE("a setting changed by set_config(..., false) never reaches another client, as SET's does not",
          "[session_state]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  INFO(mux.log_tail());
  std::string default_work_mem;
  {
    Connection a(mux.conninfo());
    REQUIRE(a.ok());
    default_work_mem = exec_bounded(a.get(), "SHOW work_mem").value();
    REQUIRE(default_work_mem != "1234kB");
    REQUIRE(exec_bounded(a.get(), "SELECT set_config('work_mem', '1234kB', false)").ok());
    CHECK(exec_bounded(a.get(), "SHOW work_mem").value() == "1234kB");
  }
  Connection b(mux.conninfo());
  REQUIRE(b.ok());
  CHECK(exec_bounded(b.get(), "SHOW work_mem").value() == default_work_mem);
}
