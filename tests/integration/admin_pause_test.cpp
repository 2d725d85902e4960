// PAUSE, RESUME and KILL in the admin console: new transactions held and let go, a database's clients
// dropped.
#include <catch2/catch.hpp>
#include <map>

#include "bounded.hpp"
#include "http_get.hpp"
#include "libpq.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;
using Clock = std::chrono::steady_clock;

namespace {

// Whether SHOW CLIENTS has a client of `application_name` in `state`.
bool client_state_is(Connection& admin, const std::string& application_name, const std::string& state) {
  Result r = admin.exec("SHOW CLIENTS");
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) return false;
  int name = PQfnumber(r.get(), "application_name"), st = PQfnumber(r.get(), "state");
  for (int row = 0; row < PQntuples(r.get()); ++row)
    if (application_name == PQgetvalue(r.get(), row, name)) return state == PQgetvalue(r.get(), row, st);
  return false;
}

// Whether a query sent with PQsendQuery has its whole answer yet, without waiting for it.
bool answered(PGconn* conn) {
  if (!PQconsumeInput(conn)) return true;  // the connection broke: that is an answer too
  return !PQisBusy(conn);
}

}  // namespace

TEST_CASE("PAUSE waits for the transaction under way, holds new ones, and RESUME lets them go", "[admin]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 2, .extra_yaml = "admin_users: [app]\n"});
  Connection admin(mux.conninfo("app", "app-secret", "pgmux")),
      pauser(mux.conninfo("app", "app-secret", "pgmux"));
  Connection in_tx(mux.conninfo()), later(mux.conninfo() + " application_name=later");
  REQUIRE(admin.ok());
  REQUIRE(pauser.ok());
  REQUIRE(in_tx.ok());
  REQUIRE(later.ok());
  REQUIRE(exec_bounded(in_tx.get(), "BEGIN").ok());
  REQUIRE(exec_bounded(in_tx.get(), "SELECT 1").ok());

  REQUIRE(PQsendQuery(pauser.get(), "PAUSE app") == 1);
  // PAUSE holds the database at once, and answers only once the open transaction is over. pgmux logs the
  // PAUSE after holding the database: until then a new client could still get a backend (an answer on
  // another admin connection says nothing about this one; under AddressSanitizer that race was lost).
  REQUIRE(wait_until([&] { return mux.log().find("admin console: PAUSE app") != std::string::npos; }, 10s));
  REQUIRE(PQsendQuery(later.get(), "SELECT 'after pause'") == 1);
  REQUIRE(wait_until([&] { return client_state_is(admin, "later", "waiting"); }, 10s));
  CHECK_FALSE(answered(pauser.get()));
  CHECK_FALSE(answered(later.get()));

  REQUIRE(exec_bounded(in_tx.get(), "COMMIT").ok());  // the transaction under way finishes normally
  bool timed_out = false;
  Result paused = next_result(pauser.get(), Clock::now() + 10s, timed_out);
  REQUIRE_FALSE(timed_out);
  REQUIRE(paused);
  CHECK(PQresultStatus(paused.get()) == PGRES_COMMAND_OK);
  CHECK(std::string(PQcmdStatus(paused.get())) == "PAUSE");
  while (next_result(pauser.get(), Clock::now() + 10s, timed_out)) {
  }
  CHECK_FALSE(answered(later.get()));  // still held
  CHECK(client_state_is(admin, "later", "waiting"));

  Result resumed = admin.exec("RESUME app");
  CHECK(PQresultStatus(resumed.get()) == PGRES_COMMAND_OK);
  Result r = next_result(later.get(), Clock::now() + 10s, timed_out);
  REQUIRE_FALSE(timed_out);
  REQUIRE(r);
  CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == "after pause");
  while (next_result(later.get(), Clock::now() + 10s, timed_out)) {
  }
  CHECK(exec_bounded(in_tx.get(), "SELECT 2").value() == "2");
}

TEST_CASE("PAUSE gives up after shutdown_timeout with the database still held; RESUME undoes it", "[admin]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = "admin_users: [app]\nshutdown_timeout: 1s\n"});
  Connection admin(mux.conninfo("app", "app-secret", "pgmux")), in_tx(mux.conninfo());
  REQUIRE(admin.ok());
  REQUIRE(in_tx.ok());
  REQUIRE(exec_bounded(in_tx.get(), "BEGIN").ok());
  Outcome pause = exec_bounded(admin.get(), "PAUSE", 20s);
  CHECK(pause.sqlstate == "57014");
  CHECK(pause.error.find("still in use") != std::string::npos);
  CHECK(exec_bounded(admin.get(), "RESUME").ok());
  CHECK(exec_bounded(in_tx.get(), "COMMIT").ok());
  Connection after(mux.conninfo());
  CHECK(exec_bounded(after.get(), "SELECT 3", 10s).value() == "3");
}

TEST_CASE("PAUSE, RESUME and KILL refuse unknown databases and wrong usage with an error", "[admin]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = "admin_users: [app]\n"});
  Connection admin(mux.conninfo("app", "app-secret", "pgmux"));
  REQUIRE(admin.ok());
  CHECK(exec_bounded(admin.get(), "PAUSE nosuchdb").sqlstate == "3D000");
  CHECK(exec_bounded(admin.get(), "KILL nosuchdb").sqlstate == "3D000");
  CHECK(exec_bounded(admin.get(), "RESUME nosuchdb").sqlstate == "3D000");
  CHECK(exec_bounded(admin.get(), "RESUME app").sqlstate == "55000");  // not paused
  CHECK(exec_bounded(admin.get(), "RESUME").sqlstate == "55000");
  CHECK(exec_bounded(admin.get(), "KILL").sqlstate == "42601");
  CHECK(exec_bounded(admin.get(), "PAUSE app forced").sqlstate == "42601");
  CHECK(exec_bounded(admin.get(), "SHOW CLIENTS please").sqlstate == "42601");
  // Still serving, and the database names are case-sensitive as in the config.
  CHECK(exec_bounded(admin.get(), "pause \"app\";").ok());
  CHECK(exec_bounded(admin.get(), "resume app").ok());
  Connection client(mux.conninfo());
  CHECK(exec_bounded(client.get(), "SELECT 1", 10s).value() == "1");
}

TEST_CASE("KILL drops a database's clients and backends at once; new clients wait for RESUME", "[admin]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 2, .extra_yaml = "admin_users: [app]\n", .http = true});
  Connection admin(mux.conninfo("app", "app-secret", "pgmux"));
  Connection idle(mux.conninfo()), in_tx(mux.conninfo()),
      other_db(mux.conninfo("app", "app-secret", "forced"));
  REQUIRE(admin.ok());
  REQUIRE(idle.ok());
  REQUIRE(in_tx.ok());
  REQUIRE(other_db.ok());
  // Two backends: one lent to the client in a transaction, one idle in the pool.
  REQUIRE(exec_bounded(in_tx.get(), "BEGIN").ok());
  REQUIRE(exec_bounded(in_tx.get(), "CREATE TEMP TABLE doomed (x int)").ok());
  REQUIRE(exec_bounded(idle.get(), "SELECT 1").ok());
  REQUIRE(exec_bounded(other_db.get(), "SELECT 1").ok());
  // The client has its answer a moment before its worker puts the backend back in the pool.
  REQUIRE(wait_until(
      [&] {
        Result pools = admin.exec("SHOW POOLS");
        for (int row = 0; row < PQntuples(pools.get()); ++row)
          if (std::string(PQgetvalue(pools.get(), row, 0)) == "app")
            return std::string(PQgetvalue(pools.get(), row, PQfnumber(pools.get(), "sv_idle"))) == "1";
        return false;
      },
      10s));

  Outcome killed = exec_bounded(admin.get(), "KILL app", 10s);
  REQUIRE(killed.ok());
  for (Connection* victim : {&idle, &in_tx}) {
    Outcome o = exec_bounded(victim->get(), "SELECT 1", 10s);
    CHECK_FALSE(o.timed_out);
    CHECK_FALSE(o.ok());
    CHECK(PQstatus(victim->get()) == CONNECTION_BAD);
  }
  CHECK(exec_bounded(other_db.get(), "SELECT 2", 10s).value() == "2");  // another database is untouched

  const std::map<std::string, std::string> app_pool = {{"database", "app"}, {"user", "app"}};
  std::string page = http_get(mux.http_port(), "/metrics").body;
  CHECK(sample(page, "pgmux_backend_closes_total{database=\"app\",reason=\"killed\",user=\"app\"}") == 2);
  CHECK(sample(page, "pgmux_pool_paused{database=\"app\",user=\"app\"}") == 1);

  // A new client gets in but its query waits until RESUME.
  Connection newcomer(mux.conninfo() + " application_name=newcomer");
  REQUIRE(newcomer.ok());
  REQUIRE(PQsendQuery(newcomer.get(), "SELECT 'resumed'") == 1);
  REQUIRE(wait_until([&] { return client_state_is(admin, "newcomer", "waiting"); }, 10s));
  REQUIRE(exec_bounded(admin.get(), "RESUME app").ok());
  bool timed_out = false;
  Result r = next_result(newcomer.get(), Clock::now() + 10s, timed_out);
  REQUIRE_FALSE(timed_out);
  REQUIRE(r);
  CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == "resumed");
  while (next_result(newcomer.get(), Clock::now() + 10s, timed_out)) {
  }
  // The temp table died with its backend.
  CHECK(exec_bounded(newcomer.get(), "SELECT count(*) FROM pg_tables WHERE tablename = 'doomed'").value() ==
        "0");
}
