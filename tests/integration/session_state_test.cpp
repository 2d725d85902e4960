// Session state in transaction mode: search_path follows its client; LISTEN, temp tables and advisory locks
// pin the client to its backend (pool.session_state: pin) or are refused (error).
#include <catch2/catch.hpp>
#include <memory>
#include <thread>

#include "bounded.hpp"
#include "http_get.hpp"
#include "libpq.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;
using Clock = std::chrono::steady_clock;

namespace {

double metric(const Pgmux& mux, const std::string& name) {
  return sample(http_get(mux.http_port(), "/metrics").body, name + "{database=\"app\",user=\"app\"}");
}

const char* kDefaultSearchPath = "\"$user\", public";

}  // namespace

TEST_CASE("search_path set by one client stays with it on a shared backend and never reaches another",
          "[session_state]") {
  Connection direct(TestPostgres::shared().conninfo("app", "app-secret"));
  REQUIRE(direct.ok());
  direct.value("CREATE SCHEMA IF NOT EXISTS path_a");
  direct.value("CREATE SCHEMA IF NOT EXISTS \"Path B\"");
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection a(mux.conninfo()), b(mux.conninfo());
  Connection c(mux.conninfo() + " options='-c search_path=pg_catalog,public'");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(c.ok());

  REQUIRE(exec_bounded(a.get(), "SET search_path TO path_a, public").ok());
  for (int round = 0; round < 3; ++round) {  // one backend: each turn it must be switched back and forth
    CHECK(exec_bounded(a.get(), "SHOW search_path").value() == "path_a, public");
    CHECK(exec_bounded(b.get(), "SHOW search_path").value() == kDefaultSearchPath);
    CHECK(exec_bounded(c.get(), "SHOW search_path").value() == "pg_catalog, public");
  }
  REQUIRE(exec_bounded(c.get(), "SET search_path = 'Path B'").ok());
  CHECK(exec_bounded(c.get(), "SHOW search_path").value() == "\"Path B\"");
  CHECK(exec_bounded(a.get(), "SHOW search_path").value() == "path_a, public");

  // A failed SET changes nothing; RESET goes back to the default for that client only.
  CHECK_FALSE(exec_bounded(a.get(), "SET search_path TO path_a, 'unterminated").ok());
  CHECK(exec_bounded(a.get(), "SHOW search_path").value() == "path_a, public");
  REQUIRE(exec_bounded(a.get(), "RESET search_path").ok());
  CHECK(exec_bounded(a.get(), "SHOW search_path").value() == kDefaultSearchPath);
  CHECK(exec_bounded(c.get(), "SHOW search_path").value() == "\"Path B\"");
}

TEST_CASE(
    "LISTEN pins its client: notifications reach it, others carry on, and its backend is reset after it",
    "[session_state]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 2, .http = true});
  auto listener = std::make_unique<Connection>(mux.conninfo());
  REQUIRE(listener->ok());
  REQUIRE(exec_bounded(listener->get(), "LISTEN pgmux_test_channel").ok());
  std::string pid = exec_bounded(listener->get(), "SELECT pg_backend_pid()").value();

  // The other backend serves everyone else, one after another.
  for (int i = 0; i < 5; ++i) {
    Connection other(mux.conninfo());
    REQUIRE(other.ok());
    Outcome o = exec_bounded(other.get(), "SELECT pg_backend_pid()");
    REQUIRE(o.ok());
    CHECK(o.value() != pid);
  }
  Connection direct(TestPostgres::shared().conninfo("app", "app-secret"));
  REQUIRE(direct.ok());
  direct.value("NOTIFY pgmux_test_channel, 'hello'");
  // The notification arrives on the pinned backend; the next query brings it in.
  CHECK(exec_bounded(listener->get(), "SELECT pg_backend_pid()").value() == pid);
  PGnotify* note = PQnotifies(listener->get());
  REQUIRE(note != nullptr);
  CHECK(std::string(note->relname) == "pgmux_test_channel");
  CHECK(std::string(note->extra) == "hello");
  PQfreemem(note);
  CHECK(metric(mux, "pgmux_pinned_sessions_total") == 1);

  // Once the listener leaves, nobody inherits its LISTEN.
  listener.reset();
  for (int i = 0; i < 6; ++i) {
    Connection next(mux.conninfo());
    REQUIRE(next.ok());
    Outcome o = exec_bounded(next.get(), "SELECT count(*) FROM pg_listening_channels()");
    INFO(o.error);
    CHECK(o.value() == "0");
  }
}

TEST_CASE("temp tables and session advisory locks pin; a search_path SET inside a block pins too",
          "[session_state]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 2, .http = true});
  Connection a(mux.conninfo());
  REQUIRE(a.ok());
  REQUIRE(exec_bounded(a.get(), "CREATE TEMP TABLE scratch_rows (n int)").ok());
  for (int i = 0; i < 5; ++i) REQUIRE(exec_bounded(a.get(), "INSERT INTO scratch_rows VALUES (1)").ok());
  CHECK(exec_bounded(a.get(), "SELECT count(*) FROM scratch_rows").value() == "5");

  Connection b(mux.conninfo());
  REQUIRE(b.ok());
  REQUIRE(exec_bounded(b.get(), "SELECT pg_advisory_lock(424242)").ok());
  CHECK(exec_bounded(b.get(),
                     "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = "
                     "pg_backend_pid()")
            .value() == "1");
  CHECK(metric(mux, "pgmux_pinned_sessions_total") == 2);

  Pgmux mux2(TestPostgres::shared(), {.pool_size = 2, .http = true});
  Connection c(mux2.conninfo());
  REQUIRE(c.ok());
  REQUIRE(exec_bounded(c.get(), "BEGIN; SET search_path TO pg_catalog; COMMIT").ok());
  CHECK(metric(mux2, "pgmux_pinned_sessions_total") == 1);
  CHECK(exec_bounded(c.get(), "SHOW search_path").value() == "pg_catalog");
  Connection d(mux2.conninfo());
  REQUIRE(d.ok());
  CHECK(exec_bounded(d.get(), "SHOW search_path").value() == kDefaultSearchPath);
}

TEST_CASE("under pool.session_state: error, statements that create session state are refused with 0A000",
          "[session_state]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .pool_yaml = "  session_state: error\n"});
  Connection a(mux.conninfo()), b(mux.conninfo());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  for (const char* sql : {"LISTEN refused_channel", "CREATE TEMP TABLE refused (n int)",
                          "SELECT pg_advisory_lock(1)", "SET ROLE app", "PREPARE p AS SELECT 1"}) {
    INFO(sql);
    Outcome refused = exec_bounded(a.get(), sql);
    CHECK(refused.sqlstate == "0A000");
    CHECK(refused.error.find("pool.session_state") != std::string::npos);
    // Not pinned: the one backend still serves the other client.
    CHECK(exec_bounded(b.get(), "SELECT 1").value() == "1");
  }
  // Through the extended protocol as well.
  Result extended(PQexecParams(a.get(), "LISTEN refused_channel", 0, nullptr, nullptr, nullptr, nullptr, 0));
  CHECK(sqlstate_of(extended.get()) == "0A000");
  // Inside a transaction block the refusal aborts the transaction, exactly as a server error would.
  REQUIRE(exec_bounded(a.get(), "BEGIN").ok());
  CHECK(exec_bounded(a.get(), "LISTEN refused_channel").sqlstate == "0A000");
  CHECK(PQtransactionStatus(a.get()) == PQTRANS_INERROR);
  CHECK(exec_bounded(a.get(), "SELECT 1").sqlstate == "25P02");
  REQUIRE(exec_bounded(a.get(), "ROLLBACK").ok());
  CHECK(exec_bounded(a.get(), "SELECT count(*) FROM pg_listening_channels()").value() == "0");
  // Transaction-scoped forms are fine.
  CHECK(exec_bounded(a.get(), "BEGIN; SET LOCAL work_mem = '8MB'; SELECT pg_advisory_xact_lock(1); COMMIT")
            .ok());
}
