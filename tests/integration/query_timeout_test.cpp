// pool.query_timeout: a request the server has not answered in time ends with FATAL 57014 and its server
// connection closed (the query cancelled); an idle transaction or a quicker query is left alone.
#include <catch2/catch.hpp>
#include <chrono>

#include "bounded.hpp"
#include "libpq.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;
using Clock = std::chrono::steady_clock;

TEST_CASE("a query running past query_timeout gets 57014, its backend is closed and the query stopped",
          "[query-timeout]") {
  Pgmux mux(TestPostgres::shared(),
            {.pool_size = 2, .pool_yaml = "  query_timeout: 1s\n", .extra_yaml = "admin_users: [app]\n"});
  Connection direct(TestPostgres::shared().conninfo("app", "app-secret"));
  REQUIRE(direct.ok());
  Connection bystander(mux.conninfo());
  REQUIRE(bystander.ok());
  bystander.value("BEGIN");
  bystander.value("SELECT 1");

  Connection slow(mux.conninfo());
  REQUIRE(slow.ok());
  slow.value("BEGIN");
  std::string pid = slow.value("SELECT pg_backend_pid()");
  auto started = Clock::now();
  Outcome o = exec_bounded(slow.get(), "SELECT pg_sleep(30)", 15s);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  INFO("after " << took.count() << " ms: [" << o.sqlstate << "] " << o.error << "\n" << mux.log_tail());
  REQUIRE_FALSE(o.timed_out);
  CHECK(o.sqlstate == "57014");
  CHECK(o.error.find("query_timeout") != std::string::npos);
  CHECK(took >= 1s);
  CHECK(took < 2s);  // the sweep runs every 100 ms for a 1 s timeout
  // The server connection is gone, and with it the query (cancelled, not left to run for 30 s).
  CHECK(wait_until(
      [&] { return direct.value("SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid) == "0"; }, 10s));
  CHECK(wait_until(
      [&] {
        PQconsumeInput(slow.get());
        return PQstatus(slow.get()) == CONNECTION_BAD;
      },
      5s));

  // Idle in a transaction for longer than query_timeout (all along) is not a query running: left alone.
  CHECK(bystander.value("SELECT 2") == "2");
  bystander.value("COMMIT");
  // A query shorter than the timeout, and new clients, are served.
  Connection next(mux.conninfo());
  REQUIRE(next.ok());
  CHECK(next.value("SELECT pg_sleep(0.5)::text || 'done'") == "done");
  // SHOW CONFIG lists it.
  Connection admin(mux.conninfo("app", "app-secret", "pgmux"));
  REQUIRE(admin.ok());
  Result config = admin.exec("SHOW CONFIG");
  std::string value;
  for (int row = 0; row < PQntuples(config.get()); ++row)
    if (std::string(PQgetvalue(config.get(), row, 0)) == "pool.query_timeout")
      value = PQgetvalue(config.get(), row, 1);
  CHECK(value == "1000ms");
}
