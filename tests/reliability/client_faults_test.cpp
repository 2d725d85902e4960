// Clients that vanish at the worst moments: inside a transaction, in the middle of COPY FROM STDIN, of an
// unsynced pipeline, or of a large result they stopped reading. The backend is rolled back or closed, never
// handed on dirty, and pgmux does not buffer what a client does not read.
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <iostream>

#include "bounded.hpp"
#include "load.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;
using Clock = std::chrono::steady_clock;

namespace {

// A client gone without a Terminate: its socket just closes.
void vanish(Connection& c) {
  shutdown(PQsocket(c.get()), SHUT_RDWR);
}

// Backends of the test role in `state` ('idle in transaction', 'active'...), not counting `except`.
std::string backends_in(Connection& direct, const std::string& state, const std::string& except = "0") {
  return direct.value("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND state LIKE '" + state +
                      "%' AND pid <> " + except);
}

// After the vanished client: nothing of it is left on the server, and the next client of the same pool (of
// one backend) starts clean: no transaction open, no temp table, statement or cursor left, and the vanished
// client's uncommitted rows are not there.
void expect_clean(Pgmux& mux, Connection& direct, const std::string& table) {
  INFO(mux.log_tail());
  CHECK(wait_until([&] { return backends_in(direct, "idle in transaction") == "0"; }, 10s));
  CHECK(wait_until([&] { return backends_in(direct, "active", "pg_backend_pid()") == "0"; }, 10s));
  CHECK(direct.value("SELECT count(*) FROM " + table) == "0");
  Connection next(mux.conninfo());
  REQUIRE(next.ok());
  // The first statement of a new transaction: its start is this statement's start.
  CHECK(next.value("SELECT now() = statement_timestamp()") == "t");
  CHECK(next.value("SELECT count(*) FROM pg_class WHERE relpersistence = 't'") == "0");
  CHECK(next.value("SELECT count(*) FROM pg_prepared_statements") == "0");
  CHECK(next.value("SELECT count(*) FROM pg_cursors") == "0");
  CHECK(next.value("SELECT current_setting('application_name')") != "doomed");
  next.value("INSERT INTO " + table + " VALUES (-1, 'next')");
  CHECK(direct.value("SELECT string_agg(who, ',') FROM " + table) == "next");
}

void fresh_table(Connection& direct, const std::string& table) {
  direct.value("DROP TABLE IF EXISTS " + table);
  direct.value("CREATE TABLE " + table + " (n int, who text)");
}

std::string pid_of(Connection& c) {
  return c.value("SELECT pg_backend_pid()");
}

}  // namespace

TEST_CASE("a client that vanishes mid-transaction with session state leaves nothing behind",
          "[reliability][client-faults]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection direct(TestPostgres::shared().conninfo("app", "app-secret"));
  REQUIRE(direct.ok());
  fresh_table(direct, "cf_tx");
  {
    Connection doomed(mux.conninfo());
    REQUIRE(doomed.ok());
    doomed.value("SET application_name = 'doomed'");
    doomed.value("CREATE TEMP TABLE cf_scratch (x int)");  // pins the client to its backend
    doomed.value("PREPARE cf_plan AS SELECT 1");
    doomed.value("BEGIN");
    doomed.value("INSERT INTO cf_tx VALUES (1, 'ghost')");
    doomed.value("DECLARE cf_cursor CURSOR FOR SELECT 1");
    REQUIRE(backends_in(direct, "idle in transaction") == "1");
    vanish(doomed);
  }
  expect_clean(mux, direct, "cf_tx");
}

TEST_CASE("a client that vanishes mid-COPY FROM STDIN: nothing copied, backend not reused dirty",
          "[reliability][client-faults]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection direct(TestPostgres::shared().conninfo("app", "app-secret"));
  REQUIRE(direct.ok());
  fresh_table(direct, "cf_copy");
  {
    Connection doomed(mux.conninfo());
    REQUIRE(doomed.ok());
    std::string pid = pid_of(doomed);
    Result r = doomed.exec("COPY cf_copy FROM STDIN");
    REQUIRE(PQresultStatus(r.get()) == PGRES_COPY_IN);
    for (int i = 0; i < 1000; ++i) {
      std::string row = std::to_string(i) + "\tghost\n";
      REQUIRE(PQputCopyData(doomed.get(), row.data(), static_cast<int>(row.size())) == 1);
    }
    REQUIRE(PQflush(doomed.get()) == 0);
    REQUIRE(wait_until(
        [&] {
          return direct.value("SELECT query FROM pg_stat_activity WHERE pid = " + pid) ==
                 "COPY cf_copy FROM STDIN";
        },
        10s));
    vanish(doomed);  // no CopyDone, no CopyFail
  }
  expect_clean(mux, direct, "cf_copy");
}

TEST_CASE("a client that vanishes mid-pipeline (Bind/Execute without Sync) has its work rolled back",
          "[reliability][client-faults]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection direct(TestPostgres::shared().conninfo("app", "app-secret"));
  REQUIRE(direct.ok());
  fresh_table(direct, "cf_pipeline");
  {
    Connection doomed(mux.conninfo());
    REQUIRE(doomed.ok());
    std::string pid = pid_of(doomed);
    REQUIRE(PQenterPipelineMode(doomed.get()) == 1);
    for (int i = 0; i < 5; ++i) {
      std::string n = std::to_string(i);
      const char* values[] = {n.c_str()};
      REQUIRE(PQsendQueryParams(doomed.get(), "INSERT INTO cf_pipeline VALUES ($1, 'ghost')", 1, nullptr,
                                values, nullptr, nullptr, 0) == 1);
    }
    REQUIRE(PQsendFlushRequest(doomed.get()) == 1);
    REQUIRE(PQflush(doomed.get()) == 0);
    // All five ran (their rows are there, uncommitted: the implicit transaction waits for a Sync).
    bool timed_out = false;
    int inserted = 0;
    auto deadline = Clock::now() + 10s;
    while (inserted < 5 && !timed_out) {
      Result r = next_result(doomed.get(), deadline, timed_out);
      if (r && PQresultStatus(r.get()) == PGRES_COMMAND_OK) ++inserted;
    }
    REQUIRE(inserted == 5);
    CHECK(direct.value("SELECT backend_xid IS NOT NULL FROM pg_stat_activity WHERE pid = " + pid) == "t");
    vanish(doomed);
  }
  expect_clean(mux, direct, "cf_pipeline");
}

TEST_CASE(
    "a client that stops reading a ~100 MB result: pgmux holds it back instead of buffering it, and the "
    "query is stopped when the client vanishes",
    "[reliability][client-faults]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection direct(TestPostgres::shared().conninfo("app", "app-secret"));
  REQUIRE(direct.ok());
  fresh_table(direct, "cf_stream");
  pid_t pgmux = mux.pid();
  {
    Connection warm(mux.conninfo());
    REQUIRE(warm.ok());
    REQUIRE(warm.value("SELECT count(*) FROM generate_series(1, 1000)") == "1000");
  }
  long rss_before = rss_kib(pgmux);
  long rss_during = -1;
  {
    Connection doomed(mux.conninfo());
    REQUIRE(doomed.ok());
    std::string pid = pid_of(doomed);
    // 100,000 rows of 1 kB: about 100 MB on the wire.
    REQUIRE(PQsendQuery(doomed.get(), "SELECT n, repeat('x', 1000) FROM generate_series(1, 100000) n") == 1);
    // Not read by the client: once the socket buffers on the way are full, Postgres itself waits to write.
    bool backpressure = wait_until(
        [&] {
          return direct.value("SELECT wait_event FROM pg_stat_activity WHERE pid = " + pid) == "ClientWrite";
        },
        20s);
    INFO(mux.log_tail());
    REQUIRE(backpressure);
    rss_during = rss_kib(pgmux);
    vanish(doomed);
    CHECK(wait_until(
        [&] {
          return direct.value("SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid +
                              " AND state = 'active'") == "0";
        },
        10s));
  }
  long rss_after = rss_kib(pgmux);
  std::cout << "[client-faults] unread ~100 MB result: pgmux VmRSS " << rss_before << " KiB before, "
            << rss_during << " KiB while the server waited to write, " << rss_after << " KiB after"
            << std::endl;
  if (!sanitized()) CHECK(rss_during - rss_before < 32 * 1024);  // ASan's quarantine holds freed blocks
  expect_clean(mux, direct, "cf_stream");
}
