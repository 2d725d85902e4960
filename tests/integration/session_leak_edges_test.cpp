// The edges of keeping session state from other clients (each one a leak until it was fixed): the next
// client of the one backend must not see what the first one left.
#include <sys/socket.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <string>

#include "bounded.hpp"
#include "libpq.hpp"
#include "neon_http.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;
namespace json = boost::json;

namespace {

// Session advisory locks held by the server session this query runs on.
const char* kHeldLocks =
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()";

// Sends one parameterised query per entry in libpq pipeline mode, one Sync after them all, and reads every
// result up to the Sync's. Returns the first error's SQLSTATE ("" if none) or "timeout".
std::string pipeline_with_one_sync(PGconn* conn,
                                   const std::vector<std::pair<std::string, std::string>>& queries) {
  if (PQenterPipelineMode(conn) != 1) return "no pipeline mode";
  for (const auto& [sql, param] : queries) {
    const char* values[] = {param.c_str()};
    if (PQsendQueryParams(conn, sql.c_str(), 1, nullptr, values, nullptr, nullptr, 0) != 1) return "send";
  }
  if (PQpipelineSync(conn) != 1 || PQflush(conn) != 0) return "sync";
  auto deadline = std::chrono::steady_clock::now() + 30s;
  std::string first_error;
  for (;;) {
    bool timed_out = false;
    Result r = next_result(conn, deadline, timed_out);
    if (timed_out) return "timeout";
    if (!r) continue;  // the end of one query's results
    ExecStatusType status = PQresultStatus(r.get());
    if (status == PGRES_FATAL_ERROR && first_error.empty()) first_error = sqlstate_of(r.get());
    if (status == PGRES_PIPELINE_SYNC) break;
  }
  PQexitPipelineMode(conn);
  return first_error;
}

// pg_advisory_lock(int4, int4), found without writing its name (which would pin the client that asks).
const char* kLockOid =
    "SELECT oid FROM pg_proc WHERE proname = 'pg_advisory' || '_lock' AND pronargs = 2 AND proargtypes[0] = "
    "'int4'::regtype";

}  // namespace

// A request that fails may leave its state all the same: a session advisory lock is not transactional, nor
// is SQL PREPARE, and a COMMIT inside the query makes what came before it stay. The client is pinned then.
TEST_CASE(
    "state that outlives a failed request (advisory lock, PREPARE, committed temp table, LISTEN) "
    "never reaches the next client",
    "[session_state]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  INFO(mux.log_tail());
  SECTION("a session advisory lock taken by a query that then fails") {
    {
      Connection a(mux.conninfo());
      REQUIRE(a.ok());
      // (SELECT 0) is not folded at plan time: the lock is taken, then the division fails.
      CHECK(exec_bounded(a.get(), "SELECT pg_advisory_lock(515151), 1 / (SELECT 0)").sqlstate == "22012");
    }
    Connection b(mux.conninfo());
    REQUIRE(b.ok());
    CHECK(exec_bounded(b.get(), kHeldLocks).value() == "0");
  }
  SECTION("SQL PREPARE followed by a failing statement") {
    {
      Connection a(mux.conninfo());
      REQUIRE(a.ok());
      CHECK(exec_bounded(a.get(), "PREPARE leak_prep AS SELECT 'a'::text; SELECT 1 / 0").sqlstate == "22012");
    }
    Connection b(mux.conninfo());
    REQUIRE(b.ok());
    Outcome seen = exec_bounded(b.get(), "EXECUTE leak_prep");
    CHECK(seen.sqlstate == "26000");  // b never prepared it
    CHECK(seen.value() == "");
  }
  SECTION("a temporary table committed before a failing statement") {
    {
      Connection a(mux.conninfo());
      REQUIRE(a.ok());
      CHECK(exec_bounded(a.get(),
                         "CREATE TEMP TABLE leak_committed AS SELECT 'a'::text AS who; COMMIT; "
                         "SELECT 1 / 0")
                .sqlstate == "22012");
    }
    Connection b(mux.conninfo());
    REQUIRE(b.ok());
    Outcome seen = exec_bounded(b.get(), "SELECT who FROM leak_committed");
    CHECK(seen.sqlstate == "42P01");
    CHECK(seen.value() == "");
  }
  SECTION("a LISTEN committed before a failing statement") {
    {
      Connection a(mux.conninfo());
      REQUIRE(a.ok());
      CHECK(exec_bounded(a.get(), "LISTEN leak_channel; COMMIT; SELECT 1 / 0").sqlstate == "22012");
    }
    Connection b(mux.conninfo());
    REQUIRE(b.ok());
    CHECK(exec_bounded(b.get(), "SELECT count(*) FROM pg_listening_channels()").value() == "0");
  }
  SECTION("a SET of a setting pgmux does not carry, committed before a failing statement") {
    std::string default_work_mem;
    {
      Connection a(mux.conninfo());
      REQUIRE(a.ok());
      default_work_mem = exec_bounded(a.get(), "SHOW work_mem").value();
      REQUIRE(default_work_mem != "1234kB");
      CHECK(exec_bounded(a.get(), "SET work_mem = '1234kB'; COMMIT; SELECT 1 / 0").sqlstate == "22012");
    }
    Connection b(mux.conninfo());
    REQUIRE(b.ok());
    CHECK(exec_bounded(b.get(), "SHOW work_mem").value() == default_work_mem);
  }
  SECTION("a search_path committed before a failing statement: pgmux's record of the backend is wrong") {
    std::string default_path;
    {
      Connection a(mux.conninfo());
      REQUIRE(a.ok());
      default_path = exec_bounded(a.get(), "SHOW search_path").value();
      CHECK(exec_bounded(a.get(), "SET search_path = pg_catalog; COMMIT; SELECT 1 / 0").sqlstate == "22012");
    }
    Connection b(mux.conninfo());
    REQUIRE(b.ok());
    CHECK(exec_bounded(b.get(), "SHOW search_path").value() == default_path);
  }
}

TEST_CASE("a session advisory lock taken in a pipeline whose later query fails never reaches the next client",
          "[session_state]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  INFO(mux.log_tail());
  {
    Connection a(mux.conninfo());
    REQUIRE(a.ok());
    // Extended protocol, parameters, one Sync: the implicit transaction fails, the lock stays.
    CHECK(pipeline_with_one_sync(a.get(), {{"SELECT pg_advisory_lock($1::bigint)", "525252"},
                                           {"SELECT 1 / $1::int", "0"}}) == "22012");
  }
  Connection b(mux.conninfo());
  REQUIRE(b.ok());
  CHECK(exec_bounded(b.get(), kHeldLocks).value() == "0");
}

// A Query or unnamed Parse longer than the relay's buffer (16 KiB) is searched piece by piece as it passes.
TEST_CASE("session state named after the first 16 KiB of a query never reaches the next client",
          "[session_state]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  INFO(mux.log_tail());
  const std::string padding(20000, 'x');
  SECTION("a session advisory lock") {
    {
      Connection a(mux.conninfo());
      REQUIRE(a.ok());
      REQUIRE(exec_bounded(a.get(), "SELECT length('" + padding + "'), pg_advisory_lock(535353)").ok());
    }
    Connection b(mux.conninfo());
    REQUIRE(b.ok());
    CHECK(exec_bounded(b.get(), kHeldLocks).value() == "0");
  }
  SECTION("SELECT ... INTO TEMP") {
    {
      Connection a(mux.conninfo());
      REQUIRE(a.ok());
      REQUIRE(exec_bounded(a.get(), "SELECT '" + padding + "'::text AS pad INTO TEMP leak_long_into").ok());
    }
    Connection b(mux.conninfo());
    REQUIRE(b.ok());
    Outcome seen = exec_bounded(b.get(), "SELECT length(pad) FROM leak_long_into");
    CHECK(seen.sqlstate == "42P01");
    CHECK(seen.value() == "");
  }
  SECTION("the same through the extended protocol (unnamed Parse)") {
    {
      Connection a(mux.conninfo());
      REQUIRE(a.ok());
      const std::string sql = "SELECT length('" + padding + "'), pg_advisory_lock($1::bigint)";
      const char* values[] = {"545454"};
      Result r(PQexecParams(a.get(), sql.c_str(), 1, nullptr, values, nullptr, nullptr, 0));
      REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
    }
    Connection b(mux.conninfo());
    REQUIRE(b.ok());
    CHECK(exec_bounded(b.get(), kHeldLocks).value() == "0");
  }
}

// search_path is followed, not pinned; but with pg_temp in it, a plain CREATE TABLE may make a temporary
// table, so such a search_path pins.
TEST_CASE("a table made temporary by search_path = pg_temp never reaches the next client",
          "[session_state]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  INFO(mux.log_tail());
  {
    Connection a(mux.conninfo());
    REQUIRE(a.ok());
    REQUIRE(exec_bounded(a.get(), "SET search_path = pg_temp, public").ok());
    REQUIRE(exec_bounded(a.get(), "CREATE TABLE leak_via_path AS SELECT 'a'::text AS who").ok());
    REQUIRE(exec_bounded(a.get(), "SELECT relpersistence FROM pg_class WHERE relname = 'leak_via_path'")
                .value() == "t");
  }
  Connection b(mux.conninfo());
  REQUIRE(b.ok());
  Outcome seen = exec_bounded(b.get(), "SELECT who FROM leak_via_path");
  CHECK(seen.sqlstate == "42P01");
  CHECK(seen.value() == "");
}

// With max_prepared_statements: 0 named Parse messages pass as they are; their text is still read, and a
// named statement that creates a temporary table pins.
TEST_CASE(
    "with max_prepared_statements 0, a temp table made by a named statement never reaches the next "
    "client",
    "[session_state]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .pool_yaml = "  max_prepared_statements: 0\n"});
  INFO(mux.log_tail());
  {
    Connection a(mux.conninfo());
    REQUIRE(a.ok());
    REQUIRE(prepare_bounded(a.get(), "make_temp", "CREATE TEMP TABLE leak_named AS SELECT 'a'::text AS who")
                .ok());
    REQUIRE(exec_prepared_bounded(a.get(), "make_temp", {}).ok());
    REQUIRE(exec_bounded(a.get(), "DEALLOCATE make_temp").ok());
  }
  Connection b(mux.conninfo());
  REQUIRE(b.ok());
  Outcome seen = exec_bounded(b.get(), "SELECT who FROM leak_named");
  CHECK(seen.sqlstate == "42P01");
  CHECK(seen.value() == "");
}

// A pinned client's backend is reset with DISCARD ALL when it leaves, in transaction mode whatever
// server_reset_query (meant for session mode) says.
TEST_CASE("a pinned client's temp table never reaches the next client whatever server_reset_query says",
          "[session_state]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .pool_yaml = "  server_reset_query: DEALLOCATE ALL\n"});
  INFO(mux.log_tail());
  {
    Connection a(mux.conninfo());
    REQUIRE(a.ok());
    REQUIRE(exec_bounded(a.get(), "CREATE TEMP TABLE leak_reset AS SELECT 'a'::text AS who").ok());
    REQUIRE(exec_bounded(a.get(), "SELECT pg_advisory_lock(555555)").ok());
  }
  Connection b(mux.conninfo());
  REQUIRE(b.ok());
  Outcome seen = exec_bounded(b.get(), "SELECT who FROM leak_reset");
  CHECK(seen.sqlstate == "42P01");
  CHECK(seen.value() == "");
  CHECK(exec_bounded(b.get(), kHeldLocks).value() == "0");
}

// Postgres makes a temporary table of SELECT ... INTO TEMP, INTO LOCAL TEMP (and GLOBAL), INTO pg_temp.name,
// and of a parenthesised SELECT INTO too.
TEST_CASE("temporary tables made by other spellings of SELECT ... INTO never reach the next client",
          "[session_state]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .http = true});
  INFO(mux.log_tail());
  const std::string sql = GENERATE(as<std::string>{}, "SELECT 'a'::text AS who INTO LOCAL TEMP leak_spelled",
                                   "SELECT 'a'::text AS who INTO pg_temp.leak_spelled",
                                   "(SELECT 'a'::text AS who INTO TEMP leak_spelled)");
  INFO(sql);
  SECTION("over the wire") {
    {
      Connection a(mux.conninfo());
      REQUIRE(a.ok());
      REQUIRE(exec_bounded(a.get(), sql).ok());
      REQUIRE(exec_bounded(a.get(), "SELECT who FROM leak_spelled").value() == "a");
    }
    Connection b(mux.conninfo());
    REQUIRE(b.ok());
    Outcome seen = exec_bounded(b.get(), "SELECT who FROM leak_spelled");
    CHECK(seen.sqlstate == "42P01");
    CHECK(seen.value() == "");
  }
  SECTION("over POST /sql: the command tag (SELECT 1) does not show it either") {
    ok(post(mux.http_port(), neon_call(query_body(sql))));
    json::object answer = ok(post(
        mux.http_port(), neon_call(query_body("SELECT count(*) FROM pg_class WHERE relname = "
                                              "'leak_spelled' AND relnamespace = pg_my_temp_schema()"))));
    CHECK(answer["rows"].at(0).at(0) == json::value("0"));
  }
}

// A FunctionCall message (libpq's PQfn, the fast-path interface) runs a function by its OID, which pgmux does
// not know by name: it pins.
TEST_CASE("a session advisory lock taken through a FunctionCall message never reaches the next client",
          "[session_state]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  INFO(mux.log_tail());
  {
    Connection a(mux.conninfo());
    REQUIRE(a.ok());
    const std::string oid = exec_bounded(a.get(), kLockOid).value();
    REQUIRE(!oid.empty());
    PQArgBlock args[2];
    for (PQArgBlock& arg : args) {
      arg.len = 4;
      arg.isint = 1;
      arg.u.integer = 565656;
    }
    char result[16];
    int result_len = 0;
    Result r(PQfn(a.get(), std::stoi(oid), reinterpret_cast<int*>(result), &result_len, 0, args, 2));
    REQUIRE(PQresultStatus(r.get()) == PGRES_COMMAND_OK);
    REQUIRE(exec_bounded(a.get(), kHeldLocks).value() == "1");
  }
  Connection b(mux.conninfo());
  REQUIRE(b.ok());
  CHECK(exec_bounded(b.get(), kHeldLocks).value() == "0");
}

// A Terminate during COPY FROM STDIN: the server would wait for the data's end for good, so pgmux ends the
// client at once and closes its busy backend (which ends the COPY and its lock).
TEST_CASE("a client that says Terminate in the middle of COPY FROM STDIN gives its backend back",
          "[session_state][backends]") {
  Connection direct(TestPostgres::shared().conninfo("app", "app-secret"));
  REQUIRE(direct.ok());
  direct.value("DROP TABLE IF EXISTS copy_terminated");
  direct.value("CREATE TABLE copy_terminated (n int)");
  {
    Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .query_wait_timeout = "5s"});
    INFO(mux.log_tail());
    {
      Connection a(mux.conninfo());
      REQUIRE(a.ok());
      Result start(PQexec(a.get(), "COPY copy_terminated FROM STDIN"));
      REQUIRE(PQresultStatus(start.get()) == PGRES_COPY_IN);
      const std::string rows = "1\n2\n3\n";
      REQUIRE(PQputCopyData(a.get(), rows.data(), static_cast<int>(rows.size())) == 1);
      REQUIRE(PQflush(a.get()) == 0);
      // ~Connection: PQfinish sends Terminate, as an application closing its connection mid-COPY does.
    }
    Connection b(mux.conninfo());
    REQUIRE(b.ok());
    Outcome count = exec_bounded(b.get(), "SELECT count(*) FROM copy_terminated", 15s);
    INFO(count.error);
    CHECK(count.value() == "0");  // today: FATAL query_wait_timeout: the only backend never came back
  }
  direct.value("DROP TABLE copy_terminated");  // after pgmux has gone, and the stuck COPY with it
}
