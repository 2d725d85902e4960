// What one client leaves on a server session never reaches the next client of that session, by each route a
// client has: simple and extended protocol, pipelines, a client that vanishes mid-COPY, POST /sql and the
// WebSocket. One backend, so that the next client gets the same server session.
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <functional>
#include <string>
#include <vector>

#include "bounded.hpp"
#include "libpq.hpp"
#include "neon_http.hpp"
#include "pgmux.hpp"
#include "scram_login.hpp"
#include "websocket_client.hpp"

using namespace pgmux::test;

namespace {

// A statement run through the extended protocol with text parameters (an unnamed statement).
Outcome exec_params(PGconn* conn, const std::string& sql, const std::vector<std::string>& params) {
  std::vector<const char*> values;
  for (const std::string& p : params) values.push_back(p.c_str());
  Outcome out;
  out.result = Result(PQexecParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                                   nullptr, nullptr, 0));
  ExecStatusType status = PQresultStatus(out.result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    out.error = PQerrorMessage(conn);
    out.sqlstate = sqlstate_of(out.result.get());
  }
  return out;
}

// One way for a client to change something: a name for the report, and the calls that do it.
struct Route {
  std::string name;
  std::function<bool(PGconn*)> run;
};

Route simple(std::vector<std::string> statements) {
  std::string name;
  for (const auto& s : statements) name += s + " / ";
  return {name, [statements](PGconn* c) {
            for (const auto& s : statements)
              if (!exec_bounded(c, s).ok()) return false;
            return true;
          }};
}

Route unnamed(std::string sql, std::vector<std::string> params = {}) {
  return {"extended, unnamed: " + sql, [sql, params](PGconn* c) { return exec_params(c, sql, params).ok(); }};
}

Route named(std::string sql) {
  return {"extended, named: " + sql, [sql](PGconn* c) {
            return prepare_bounded(c, "route_statement", sql).ok() &&
                   exec_prepared_bounded(c, "route_statement", {}).ok();
          }};
}

// Sends each statement in pipeline mode with one Sync after them all; true if none failed.
Route pipelined(std::vector<std::string> statements) {
  std::string name = "pipeline:";
  for (const auto& s : statements) name += " " + s + ";";
  return {name, [statements](PGconn* c) {
            if (PQenterPipelineMode(c) != 1) return false;
            for (const auto& s : statements)
              if (PQsendQueryParams(c, s.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) != 1)
                return false;
            if (PQpipelineSync(c) != 1 || PQflush(c) != 0) return false;
            auto deadline = std::chrono::steady_clock::now() + 30s;
            bool failed = false;
            for (;;) {
              bool timed_out = false;
              Result r = next_result(c, deadline, timed_out);
              if (timed_out) return false;
              if (!r) continue;
              ExecStatusType status = PQresultStatus(r.get());
              failed |= status == PGRES_FATAL_ERROR || status == PGRES_PIPELINE_ABORTED;
              if (status == PGRES_PIPELINE_SYNC) break;
            }
            return PQexitPipelineMode(c) == 1 && !failed;
          }};
}

std::string show(Pgmux& mux, const std::string& setting) {
  Connection c(mux.conninfo());
  return c.ok() ? exec_bounded(c.get(), "SHOW " + setting).value() : "no connection";
}

}  // namespace

TEST_CASE("settings changed for the session by any route never reach the next client", "[session_state]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  INFO(mux.log_tail());
  struct Case {
    Route route;
    std::string setting, value;
  };
  const std::vector<Case> cases = {
      {simple({"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE"}),
       "default_transaction_isolation", "serializable"},
      {simple({"SET SESSION work_mem = '1234kB'"}), "work_mem", "1234kB"},
      {simple({"BEGIN", "SET work_mem = '1234kB'", "COMMIT"}), "work_mem", "1234kB"},
      {simple({"BEGIN", "SET LOCAL work_mem = '1234kB'", "SET work_mem FROM CURRENT", "COMMIT"}), "work_mem",
       "1234kB"},
      {simple({"SET default_transaction_read_only = on"}), "default_transaction_read_only", "on"},
      {simple({"SET lock_timeout TO DEFAULT", "SET lock_timeout = '7s'"}), "lock_timeout", "7s"},
      {unnamed("SET work_mem = '1234kB'"), "work_mem", "1234kB"},
      {unnamed("SELECT set_config('work_mem', $1, $2)", {"1234kB", "false"}), "work_mem", "1234kB"},
      {unnamed("SELECT set_config($1, $2, false)", {"work_mem", "1234kB"}), "work_mem", "1234kB"},
      {named("SET work_mem = '1234kB'"), "work_mem", "1234kB"},
      {pipelined({"SELECT 1", "SET work_mem = '1234kB'", "SELECT 2"}), "work_mem", "1234kB"},
  };
  for (const Case& c : cases) {
    INFO(c.route.name);
    const std::string before = show(mux, c.setting);
    REQUIRE(before != c.value);
    {
      Connection a(mux.conninfo());
      REQUIRE(a.ok());
      REQUIRE(c.route.run(a.get()));
      CHECK(exec_bounded(a.get(), "SHOW " + c.setting).value() == c.value);
      CHECK(exec_bounded(a.get(), "SELECT 1").value() == "1");  // a transaction later, still its own
      CHECK(exec_bounded(a.get(), "SHOW " + c.setting).value() == c.value);
    }
    CHECK(show(mux, c.setting) == before);
  }
}

TEST_CASE("set_config(..., true) with is_local passed as a parameter lasts for its transaction only",
          "[session_state]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection a(mux.conninfo()), b(mux.conninfo());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  const std::string before = exec_bounded(b.get(), "SHOW work_mem").value();
  // Pinned (pgmux cannot tell the parameter's value), but Postgres drops the setting at the end of the
  // statement's transaction either way.
  CHECK(exec_params(a.get(), "SELECT set_config('work_mem', $1, $2)", {"1234kB", "true"}).value() ==
        "1234kB");
  CHECK(exec_bounded(a.get(), "SHOW work_mem").value() == before);
}

TEST_CASE("tracked settings changed by every route come back as each client's own on the shared backend",
          "[session_state][params]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  INFO(mux.log_tail());
  const std::vector<std::string> names = {"TimeZone", "DateStyle", "IntervalStyle", "application_name",
                                          "client_encoding"};
  auto values = [&](PGconn* c) {
    std::vector<std::string> out;
    for (const auto& n : names) out.push_back(exec_bounded(c, "SHOW " + n).value());
    return out;
  };
  Connection plain(mux.conninfo());
  REQUIRE(plain.ok());
  const std::vector<std::string> defaults = values(plain.get());
  Connection utc(mux.conninfo() + " options='-c TimeZone=UTC'");
  REQUIRE(utc.ok());
  std::vector<std::string> utc_values = defaults;
  utc_values[0] = "UTC";
  REQUIRE(defaults[0] != "UTC");

  Connection a(mux.conninfo());
  REQUIRE(a.ok());
  REQUIRE(exec_bounded(a.get(), "SET TIME ZONE 'Asia/Tokyo'").ok());
  REQUIRE(exec_params(a.get(), "SET DateStyle = 'German'", {}).ok());
  REQUIRE(prepare_bounded(a.get(), "interval_style", "SET IntervalStyle = 'iso_8601'").ok());
  REQUIRE(exec_prepared_bounded(a.get(), "interval_style", {}).ok());
  REQUIRE(exec_params(a.get(), "SELECT set_config('application_name', $1, false)", {"leaky"}).ok());
  REQUIRE(exec_bounded(a.get(), "BEGIN").ok());
  REQUIRE(exec_bounded(a.get(), "SET client_encoding = 'LATIN1'").ok());
  REQUIRE(exec_bounded(a.get(), "COMMIT").ok());
  const std::vector<std::string> mine = {"Asia/Tokyo", "German, DMY", "iso_8601", "leaky", "LATIN1"};
  for (int round = 0; round < 2; ++round) {
    CHECK(values(plain.get()) == defaults);
    CHECK(values(utc.get()) == utc_values);
    CHECK(values(a.get()) == mine);
  }
  // One server session served them all: nothing was pinned.
  const std::string pid = exec_bounded(a.get(), "SELECT pg_backend_pid()").value();
  CHECK(exec_bounded(plain.get(), "SELECT pg_backend_pid()").value() == pid);
  CHECK(exec_bounded(utc.get(), "SELECT pg_backend_pid()").value() == pid);
}

TEST_CASE(
    "temp tables, LISTEN, WITH HOLD cursors and advisory locks made through the extended protocol "
    "never reach the next client",
    "[session_state]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  INFO(mux.log_tail());
  struct Case {
    Route route;
    std::string probe, clean;  // what the next client asks, and the answer when nothing leaked
  };
  const std::string temp_probe =
      "SELECT count(*) FROM pg_class WHERE relname = 'ext_leak' AND relnamespace = pg_my_temp_schema()";
  const std::string lock_probe =
      "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()";
  const std::vector<Case> cases = {
      {unnamed("CREATE TEMP TABLE ext_leak AS SELECT 'a'::text AS who"), temp_probe, "0"},
      {named("CREATE TEMP TABLE ext_leak AS SELECT 'a'::text AS who"), temp_probe, "0"},
      {pipelined({"SELECT 1", "CREATE TEMP TABLE ext_leak (who text)", "SELECT 2"}), temp_probe, "0"},
      {unnamed("LISTEN ext_channel"), "SELECT count(*) FROM pg_listening_channels()", "0"},
      {named("LISTEN ext_channel"), "SELECT count(*) FROM pg_listening_channels()", "0"},
      {unnamed("DECLARE ext_cursor CURSOR WITH HOLD FOR SELECT 'a'"), "SELECT count(*) FROM pg_cursors", "0"},
      {unnamed("SELECT pg_advisory_lock($1::bigint)", {"575757"}), lock_probe, "0"},
      {named("SELECT pg_try_advisory_lock(575758)"), lock_probe, "0"},
      {simple({"PREPARE sql_prepared AS SELECT 1"}),
       "SELECT count(*) FROM pg_prepared_statements WHERE name = 'sql_prepared'", "0"},
  };
  for (const Case& c : cases) {
    INFO(c.route.name);
    {
      Connection a(mux.conninfo());
      REQUIRE(a.ok());
      REQUIRE(c.route.run(a.get()));
      CHECK(exec_bounded(a.get(), c.probe).value() != c.clean);  // it is there for the client that made it
    }
    Connection b(mux.conninfo());
    REQUIRE(b.ok());
    Outcome seen = exec_bounded(b.get(), c.probe);
    INFO(seen.error);
    CHECK(seen.value() == c.clean);
  }
}

TEST_CASE("a statement text shared by clients with different search_paths reads each client's own table",
          "[session_state][prepared]") {
  Connection direct(TestPostgres::shared().conninfo("app", "app-secret"));
  REQUIRE(direct.ok());
  direct.value("SET client_min_messages = warning");
  direct.value("CREATE SCHEMA IF NOT EXISTS leak_a");
  direct.value("CREATE SCHEMA IF NOT EXISTS leak_b");
  direct.value("DROP TABLE IF EXISTS leak_a.owner, leak_b.owner");
  direct.value("CREATE TABLE leak_a.owner AS SELECT 'a'::text AS who");
  direct.value("CREATE TABLE leak_b.owner AS SELECT 'b'::text AS who");
  {
    Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
    INFO(mux.log_tail());
    Connection a(mux.conninfo() + " options='-c search_path=leak_a'");
    Connection b(mux.conninfo());
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    REQUIRE(exec_bounded(b.get(), "SET search_path = leak_b").ok());
    // The same text: pgmux prepares it once on the backend, for both.
    REQUIRE(prepare_bounded(a.get(), "whose", "SELECT who FROM owner").ok());
    REQUIRE(prepare_bounded(b.get(), "whose", "SELECT who FROM owner").ok());
    for (int round = 0; round < 3; ++round) {
      CHECK(exec_prepared_bounded(a.get(), "whose", {}).value() == "a");
      CHECK(exec_prepared_bounded(b.get(), "whose", {}).value() == "b");
      CHECK(exec_params(a.get(), "SELECT who FROM owner", {}).value() == "a");
      CHECK(exec_params(b.get(), "SELECT who FROM owner", {}).value() == "b");
    }
  }
  direct.value("DROP SCHEMA leak_a, leak_b CASCADE");
}

TEST_CASE("a client that vanishes in the middle of COPY FROM STDIN leaves no rows and no state behind",
          "[session_state][backends]") {
  Connection direct(TestPostgres::shared().conninfo("app", "app-secret"));
  REQUIRE(direct.ok());
  direct.value("DROP TABLE IF EXISTS copy_leak");
  direct.value("CREATE TABLE copy_leak (n int)");
  {
    Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .query_wait_timeout = "10s"});
    INFO(mux.log_tail());
    const bool pinned = GENERATE(false, true);
    INFO("pinned by a temp table first: " << pinned);
    {
      Connection a(mux.conninfo());
      REQUIRE(a.ok());
      if (pinned) REQUIRE(exec_bounded(a.get(), "CREATE TEMP TABLE copy_scratch (n int)").ok());
      Result start(PQexec(a.get(), "COPY copy_leak FROM STDIN"));
      REQUIRE(PQresultStatus(start.get()) == PGRES_COPY_IN);
      const std::string rows = "1\n2\n3\n";
      REQUIRE(PQputCopyData(a.get(), rows.data(), static_cast<int>(rows.size())) == 1);
      REQUIRE(PQflush(a.get()) == 0);
      shutdown(PQsocket(a.get()), SHUT_RDWR);  // gone without a word: PQfinish's Terminate is lost
    }
    Connection b(mux.conninfo());
    REQUIRE(b.ok());
    Outcome count = exec_bounded(b.get(), "SELECT count(*) FROM copy_leak", 15s);
    INFO(count.error);
    CHECK(count.value() == "0");
    CHECK(exec_bounded(b.get(), "SELECT count(*) FROM pg_class WHERE relname = 'copy_scratch'").value() ==
          "0");
    CHECK(PQtransactionStatus(b.get()) == PQTRANS_IDLE);
  }
  direct.value("DROP TABLE copy_leak");
}

TEST_CASE("a POST /sql statement timeout never reaches the wire client that gets the backend next",
          "[session_state][http-sql]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .http = true});
  INFO(mux.log_tail());
  Connection wire(mux.conninfo());
  REQUIRE(wire.ok());
  const std::string before = exec_bounded(wire.get(), "SHOW statement_timeout").value();
  for (const char* sql : {"SELECT 1", "BEGIN", "COMMIT"}) {
    HttpCall call = neon_call(query_body(sql));
    call.headers.push_back({"Pgmux-Statement-Timeout", "1234"});
    post(mux.http_port(), call);  // BEGIN and COMMIT alone: the request's own transaction is bracketed
    CHECK(exec_bounded(wire.get(), "SHOW statement_timeout").value() == before);
  }
}

TEST_CASE("session state a WebSocket client leaves never reaches the next WebSocket client",
          "[session_state][websocket]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .http = true});
  INFO(mux.log_tail());
  auto query = [](WebSocketClient& client, const std::string& sql) {
    std::vector<WireMessage> messages;
    REQUIRE(client.send(query_message(sql)));
    REQUIRE(client.read_until_ready(messages));
    return data_rows(messages);
  };
  const std::vector<std::string> probes = {
      "SELECT count(*) FROM pg_class WHERE relname = 'ws_leak' AND relnamespace = pg_my_temp_schema()",
      "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
      "SELECT current_setting('work_mem') = '1234kB'"};
  {
    WebSocketClient first(mux.http_port());
    REQUIRE(first.connected());
    REQUIRE(scram_login(first, "app", "app-secret", "app") == "");
    query(first, "CREATE TEMP TABLE ws_leak AS SELECT 'a'::text AS who");
    query(first, "SELECT pg_advisory_lock(585858)");
    query(first, "SET work_mem = '1234kB'");
    CHECK(query(first, probes[0]) == std::vector<std::string>{"1"});
    CHECK(query(first, probes[1]) == std::vector<std::string>{"1"});
    CHECK(query(first, probes[2]) == std::vector<std::string>{"t"});
    first.drop();  // no Terminate
  }
  WebSocketClient second(mux.http_port());
  REQUIRE(second.connected());
  REQUIRE(scram_login(second, "app", "app-secret", "app") == "");
  CHECK(query(second, probes[0]) == std::vector<std::string>{"0"});
  CHECK(query(second, probes[1]) == std::vector<std::string>{"0"});
  CHECK(query(second, probes[2]) == std::vector<std::string>{"f"});
}

TEST_CASE("SET ROLE pins, and the next client of the backend is itself again", "[session_state]") {
  TestPostgres& postgres = TestPostgres::shared();
  postgres.psql("DROP ROLE IF EXISTS leak_role; CREATE ROLE leak_role; GRANT leak_role TO app");
  {
    Pgmux mux(postgres, {.pool_size = 1});
    INFO(mux.log_tail());
    for (const char* sql : {"SET ROLE leak_role", "SET SESSION ROLE leak_role"}) {
      INFO(sql);
      {
        Connection a(mux.conninfo());
        REQUIRE(a.ok());
        REQUIRE(exec_bounded(a.get(), sql).ok());
        CHECK(exec_bounded(a.get(), "SELECT current_user").value() == "leak_role");
        CHECK(exec_bounded(a.get(), "SELECT 1").value() == "1");
        CHECK(exec_bounded(a.get(), "SELECT current_user").value() == "leak_role");
      }
      Connection b(mux.conninfo());
      REQUIRE(b.ok());
      CHECK(exec_bounded(b.get(), "SELECT current_user").value() == "app");
    }
  }
  postgres.psql("DROP ROLE leak_role");
}
