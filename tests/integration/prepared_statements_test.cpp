// Named prepared statements in transaction mode: clients keep their statements while pgmux moves them between
// backends, each backend holding a bounded number.
#include <algorithm>
#include <catch2/catch.hpp>
#include <set>
#include <thread>

#include "bounded.hpp"
#include "http_get.hpp"
#include "libpq.hpp"
#include "pgmux.hpp"
#include "pgmux/protocol/builders.hpp"
#include "pgmux/protocol/wire.hpp"
#include "raw_socket.hpp"

using namespace pgmux::test;
using Clock = std::chrono::steady_clock;

namespace {

double metric(const Pgmux& mux, const std::string& name) {
  return sample(http_get(mux.http_port(), "/metrics").body, name + "{database=\"app\",user=\"app\"}");
}

// The messages in `bytes`, as a string of their type bytes ("1Z", "E Z"...).
std::string message_types(const std::string& bytes) {
  std::string types;
  std::size_t pos = 0;
  while (pos + 5 <= bytes.size()) {
    types += bytes[pos];
    pos += 1 + pgmux::protocol::read_u32(bytes.data() + pos + 1);
  }
  return types;
}

// The SQLSTATE of the first ErrorResponse in `bytes`, or "".
std::string first_error_sqlstate(const std::string& bytes) {
  std::size_t pos = 0;
  while (pos + 5 <= bytes.size()) {
    if (bytes[pos] == 'E') return error_response_sqlstate(bytes.substr(pos));
    pos += 1 + pgmux::protocol::read_u32(bytes.data() + pos + 1);
  }
  return "";
}

// A raw client logged in through pgmux (auth trust, database "forced"), for Close messages libpq 15 cannot
// send.
struct RawClient {
  explicit RawClient(const Pgmux& mux) : socket(mux.port()) {
    std::string startup;
    pgmux::protocol::append_startup(startup, {{"user", "app"}, {"database", "forced"}});
    std::string welcome;
    logged_in = socket.connected() && socket.send_all(startup) && socket.read_until_ready(welcome, 1, 10s);
  }
  // Sends `messages` and returns what comes back up to `syncs` ReadyForQuery messages.
  std::string round_trip(const std::string& messages, int syncs = 1) {
    std::string reply;
    if (!socket.send_all(messages) || !socket.read_until_ready(reply, syncs, 10s)) return "(no reply)";
    return reply;
  }
  RawSocket socket;
  bool logged_in = false;
};

std::string parse(const std::string& name, const std::string& sql) {
  std::string out;
  std::string definition = sql;
  definition += '\0';
  definition.append(2, '\0');  // no parameter types
  pgmux::protocol::append_parse(out, name, definition);
  return out;
}

std::string sync_message() {
  std::string out;
  pgmux::protocol::append_sync(out);
  return out;
}

// Bind with one text parameter, then Execute.
std::string bind_execute(const std::string& statement, const std::string& param) {
  std::string out;
  pgmux::protocol::MessageBuilder(out, 'B')
      .cstr("")
      .cstr(statement)
      .u16(0)
      .u16(1)
      .u32(static_cast<std::uint32_t>(param.size()))
      .bytes(param)
      .u16(0);
  pgmux::protocol::append_execute(out, "");
  return out;
}

std::string close_statement(const std::string& name) {
  std::string out;
  pgmux::protocol::append_close(out, 'S', name);
  return out;
}

}  // namespace

TEST_CASE(
    "50 clients share one named statement over 200 transactions on a pool of 4, each seeing its own results",
    "[prepared]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 4});
  Failures failures;
  std::vector<std::set<std::string>> backends_seen(50);
  auto client = [&](int id) {
    Connection c(mux.conninfo());
    if (!c.ok()) return failures.add("client " + std::to_string(id) + ": " + c.error());
    Outcome prepared = prepare_bounded(c.get(), "double_it", "SELECT $1::int * 2, pg_backend_pid()");
    if (!prepared.ok()) return failures.add("client " + std::to_string(id) + ": " + prepared.error);
    for (int i = 0; i < 4; ++i) {
      bool in_block = i == 3;  // the last one inside an explicit transaction, executed twice
      if (in_block && !exec_bounded(c.get(), "BEGIN").ok()) return failures.add("BEGIN failed");
      for (int round = 0; round < (in_block ? 2 : 1); ++round) {
        int value = id * 1000 + i * 10 + round;
        Outcome o = exec_prepared_bounded(c.get(), "double_it", {std::to_string(value)});
        if (!o.ok()) return failures.add("client " + std::to_string(id) + ": " + o.error);
        if (o.value() != std::to_string(value * 2))
          failures.add("client " + std::to_string(id) + " sent " + std::to_string(value) + ", got " +
                       o.value());
        backends_seen[id].insert(o.value(0, 1));
      }
      if (in_block && !exec_bounded(c.get(), "COMMIT").ok()) return failures.add("COMMIT failed");
    }
  };
  std::vector<std::thread> threads;
  for (int id = 0; id < 50; ++id) threads.emplace_back(client, id);
  for (auto& t : threads) t.join();
  INFO(failures.summary() << "\n" << mux.log_tail());
  REQUIRE(failures.list().empty());

  std::set<std::string> all_backends;
  for (const auto& seen : backends_seen) all_backends.insert(seen.begin(), seen.end());
  CHECK(all_backends.size() <= 4);
  // The point of the test: statements really moved. 50 clients racing for 4 backends land on several.
  auto moved =
      std::count_if(backends_seen.begin(), backends_seen.end(), [](auto& s) { return s.size() > 1; });
  CHECK(moved > 0);
}

TEST_CASE(
    "a statement one client closes stays usable by another, and is gone only for the one that closed it",
    "[prepared]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .auth_type = "trust"});
  RawClient a(mux);
  REQUIRE(a.logged_in);
  Connection b(mux.conninfo("app", "", "forced"));
  REQUIRE(b.ok());

  const std::string sql = "SELECT 41 + $1::int";
  CHECK(message_types(a.round_trip(parse("s", sql) + sync_message())) == "1Z");
  REQUIRE(prepare_bounded(b.get(), "t", sql).ok());
  CHECK(exec_prepared_bounded(b.get(), "t", {"1"}).value() == "42");

  CHECK(message_types(a.round_trip(close_statement("s") + sync_message())) == "3Z");
  std::string gone = a.round_trip(bind_execute("s", "1") + sync_message());
  CHECK(first_error_sqlstate(gone) == "26000");  // prepared statement "s" does not exist
  CHECK(gone.find("\"s\"") != std::string::npos);

  Outcome still = exec_prepared_bounded(b.get(), "t", {"2"});
  INFO(still.error);
  CHECK(still.value() == "43");
  // The name is free again for the client that closed it.
  std::string again = a.round_trip(parse("s", sql) + bind_execute("s", "3") + sync_message());
  CHECK(message_types(again) == "12DCZ");
}

TEST_CASE("Close, DEALLOCATE ALL and DISCARD ALL act on the client's own statements only", "[prepared]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection a(mux.conninfo()), b(mux.conninfo());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  const std::string sql = "SELECT 'shared ' || $1::text";
  for (const char* reset : {"DEALLOCATE ALL", "DISCARD ALL", "deallocate prepare all;"}) {
    INFO(reset);
    REQUIRE(prepare_bounded(a.get(), "mine", sql).ok());
    REQUIRE(prepare_bounded(b.get(), "theirs", sql).ok());
    REQUIRE(exec_bounded(a.get(), reset).ok());
    CHECK(exec_prepared_bounded(a.get(), "mine", {"x"}).sqlstate == "26000");
    CHECK(exec_prepared_bounded(b.get(), "theirs", {"y"}).value() == "shared y");
    REQUIRE(exec_bounded(b.get(), "DEALLOCATE ALL").ok());
  }
}

TEST_CASE("preparing a name twice is 42P05, as in Postgres, and the session goes on", "[prepared]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 2});
  Connection c(mux.conninfo());
  REQUIRE(c.ok());
  REQUIRE(prepare_bounded(c.get(), "dup", "SELECT 1 + $1::int").ok());
  Outcome twice = prepare_bounded(c.get(), "dup", "SELECT 2");
  CHECK(twice.sqlstate == "42P05");
  CHECK(twice.error.find("\"dup\" already exists") != std::string::npos);
  CHECK(exec_prepared_bounded(c.get(), "dup", {"1"}).value() == "2");
  // A failed Parse defines nothing: the name stays free.
  CHECK(prepare_bounded(c.get(), "broken", "SELECT * FROM no_such_table").sqlstate == "42P01");
  CHECK(prepare_bounded(c.get(), "broken", "SELECT 7").ok());
  CHECK(exec_prepared_bounded(c.get(), "broken", {}).value() == "7");
  // Unnamed statements are untouched by all this.
  Result r(PQexecParams(c.get(), "SELECT $1::int + 1", 1, nullptr, std::vector<const char*>{"5"}.data(),
                        nullptr, nullptr, 0));
  CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == "6");
}

TEST_CASE("an error inside a pipeline with a lazily prepared statement reaches only the client that made it",
          "[prepared]") {
  // One backend that keeps one statement: the bystander's evicts A's, so A's pipeline finds it missing and
  // pgmux prepares it first, hidden, in the same batch.
  Pgmux mux(TestPostgres::shared(),
            {.pool_size = 1, .pool_yaml = "  max_prepared_statements: 1\n", .http = true});
  Connection a(mux.conninfo()), b(mux.conninfo());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(prepare_bounded(a.get(), "div", "SELECT 100 / $1::int").ok());
  // The same name with another text: it must never stand in for A's.
  REQUIRE(prepare_bounded(b.get(), "div", "SELECT 1000 / $1::int").ok());

  Failures failures;
  std::thread bystander([&] {
    for (int i = 1; i <= 40; ++i) {
      Outcome o = exec_prepared_bounded(b.get(), "div", {std::to_string(i)});
      if (o.value() != std::to_string(1000 / i)) failures.add("bystander got [" + o.value() + "] " + o.error);
    }
  });

  REQUIRE(PQenterPipelineMode(a.get()) == 1);
  auto send = [&](const char* value) {
    const char* values[] = {value};
    REQUIRE(PQsendQueryPrepared(a.get(), "div", 1, values, nullptr, nullptr, 0) == 1);
  };
  send("4");
  send("0");  // division by zero
  send("5");  // skipped: the pipeline is aborted until the Sync
  REQUIRE(PQpipelineSync(a.get()) == 1);
  send("10");
  REQUIRE(PQpipelineSync(a.get()) == 1);
  REQUIRE(PQflush(a.get()) == 0);

  // What came back, in order: one line per result; NULLs between queries are skipped.
  std::vector<std::string> seen;
  auto deadline = Clock::now() + 20s;
  int syncs = 0;
  while (syncs < 2) {
    bool timed_out = false;
    Result r = next_result(a.get(), deadline, timed_out);
    REQUIRE_FALSE(timed_out);
    if (!r) continue;
    switch (PQresultStatus(r.get())) {
      case PGRES_TUPLES_OK:
        seen.push_back(PQgetvalue(r.get(), 0, 0));
        break;
      case PGRES_FATAL_ERROR:
        seen.push_back("error " + sqlstate_of(r.get()));
        break;
      case PGRES_PIPELINE_ABORTED:
        seen.push_back("aborted");
        break;
      case PGRES_PIPELINE_SYNC:
        seen.push_back("sync");
        ++syncs;
        break;
      default:
        seen.push_back(PQresStatus(PQresultStatus(r.get())));
    }
  }
  bystander.join();
  CHECK(seen == std::vector<std::string>{"25", "error 22012", "aborted", "sync", "10", "sync"});
  INFO(failures.summary());
  CHECK(failures.list().empty());
  CHECK(metric(mux, "pgmux_prepared_statements_lazy_total") > 0);
}

TEST_CASE(
    "with max_prepared_statements 3, ten statements used in turn all work and each backend keeps 3 at most",
    "[prepared]") {
  Pgmux mux(TestPostgres::shared(),
            {.pool_size = 1, .pool_yaml = "  max_prepared_statements: 3\n", .http = true});
  Connection c(mux.conninfo());
  REQUIRE(c.ok());
  for (int k = 0; k < 10; ++k)
    REQUIRE(prepare_bounded(c.get(), "s" + std::to_string(k), "SELECT $1::int + " + std::to_string(k)).ok());
  for (int round = 0; round < 3; ++round) {
    for (int k = 0; k < 10; ++k) {
      Outcome o = exec_prepared_bounded(c.get(), "s" + std::to_string(k), {std::to_string(round * 100)});
      INFO(o.error);
      CHECK(o.value() == std::to_string(round * 100 + k));
    }
  }
  // One backend: this query runs where the statements live.
  Outcome held =
      exec_bounded(c.get(), "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgmux\\_%'");
  CHECK(held.value() == "3");
  CHECK(metric(mux, "pgmux_prepared_statements_evicted_total") >= 27);
}

// ---- Edge cases found in review: each once broke the reply bookkeeping or let a client reach shared state
// ----

namespace {

std::string query_message(const std::string& sql) {
  std::string out;
  pgmux::protocol::append_query(out, sql);
  return out;
}

std::string bind_execute_no_params(const std::string& statement) {
  std::string out;
  pgmux::protocol::append_bind(out, "", statement);
  pgmux::protocol::append_execute(out, "");
  return out;
}

}  // namespace

TEST_CASE("a Close or Describe too short to name anything gets Postgres's own error, and pgmux stays up",
          "[prepared]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .auth_type = "trust"});
  RawClient a(mux);
  REQUIRE(a.logged_in);
  CHECK(message_types(a.round_trip(query_message("SELECT 1"))) == "TDCZ");
  for (char type : {'C', 'D'}) {
    std::string bad(1, type);
    bad += be32(4);
    std::string reply = a.round_trip(bad + sync_message());
    CHECK(first_error_sqlstate(reply) == "08P01");
  }
  Connection c(mux.conninfo("app", "", "forced"));
  INFO(mux.state());
  CHECK(c.ok());
}

TEST_CASE("a client cannot reach pgmux's shared statements by their server names", "[prepared]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .auth_type = "trust"});
  Connection victim(mux.conninfo("app", "", "forced"));
  REQUIRE(victim.ok());
  const std::string sql = "SELECT 41 + $1::int";
  REQUIRE(prepare_bounded(victim.get(), "v", sql).ok());
  REQUIRE(exec_prepared_bounded(victim.get(), "v", {"1"}).value() == "42");
  std::string server_name =
      exec_bounded(victim.get(),
                   "SELECT name FROM pg_prepared_statements WHERE name LIKE 'pgmux\\_%' "
                   "AND statement LIKE '%41 +%'")
          .value();
  REQUIRE_FALSE(server_name.empty());

  RawClient attacker(mux);
  REQUIRE(attacker.logged_in);
  // Closing it by name closes nothing; binding it by name is a statement the attacker never prepared.
  CHECK(message_types(attacker.round_trip(close_statement(server_name) + sync_message())) == "3Z");
  std::string bound = attacker.round_trip(bind_execute(server_name, "1") + sync_message());
  CHECK(first_error_sqlstate(bound) == "26000");
  CHECK(bound.find("\"" + server_name + "\" does not exist") != std::string::npos);
  // The victim's statement still runs its own text, on a fresh connection as well.
  CHECK(exec_prepared_bounded(victim.get(), "v", {"1"}).value() == "42");
  Connection second(mux.conninfo("app", "", "forced"));
  REQUIRE(prepare_bounded(second.get(), "w", sql).ok());
  CHECK(exec_prepared_bounded(second.get(), "w", {"2"}).value() == "43");
}

TEST_CASE("a prepared statement that runs DEALLOCATE ALL does not break other clients' statements",
          "[prepared]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection a(mux.conninfo()), b(mux.conninfo());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(prepare_bounded(a.get(), "x", "SELECT 7").ok());
  REQUIRE(exec_prepared_bounded(a.get(), "x", {}).value() == "7");
  REQUIRE(prepare_bounded(b.get(), "d", "DEALLOCATE ALL").ok());
  REQUIRE(exec_prepared_bounded(b.get(), "d", {}).ok());
  Outcome again = exec_prepared_bounded(a.get(), "x", {});
  INFO(again.error);
  CHECK(again.value() == "7");
}

TEST_CASE("pipelined batches: a statement prepared in a batch that failed is neither held nor defined",
          "[prepared]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .auth_type = "trust"});
  RawClient a(mux);
  REQUIRE(a.logged_in);
  // The same text under another name, in the next batch: must be prepared for real.
  std::string first =
      parse("", "SELECT 1/0") + bind_execute_no_params("") + parse("a", "SELECT 5") + sync_message();
  std::string second = parse("b", "SELECT 5") + bind_execute_no_params("b") + sync_message();
  CHECK(message_types(a.round_trip(first + second, 2)) == "1EZ12DCZ");  // 1/0 fails as it is planned, at Bind
  // The same name again after its Parse failed: no "already exists".
  std::string reply = a.round_trip(parse("s", "SELEC bad") + sync_message() + parse("s", "SELECT 3") +
                                       bind_execute_no_params("s") + sync_message(),
                                   2);
  CHECK(message_types(reply) == "EZ12DCZ");
}

TEST_CASE("COPY FROM STDIN through the extended protocol keeps the reply bookkeeping in step", "[prepared]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection c(mux.conninfo());
  REQUIRE(c.ok());
  REQUIRE(
      exec_bounded(c.get(), "DROP TABLE IF EXISTS prepared_copy; CREATE TABLE prepared_copy (x int)").ok());
  Result started(
      PQexecParams(c.get(), "COPY prepared_copy FROM STDIN", 0, nullptr, nullptr, nullptr, nullptr, 0));
  REQUIRE(PQresultStatus(started.get()) == PGRES_COPY_IN);
  REQUIRE(PQputCopyData(c.get(), "1\n", 2) == 1);
  REQUIRE(PQputCopyEnd(c.get(), nullptr) == 1);
  bool timed_out = false;
  Result done = next_result(c.get(), Clock::now() + 10s, timed_out);
  REQUIRE(done);
  CHECK(PQresultStatus(done.get()) == PGRES_COMMAND_OK);
  while (next_result(c.get(), Clock::now() + 10s, timed_out)) {
  }
  REQUIRE_FALSE(timed_out);
  Outcome prepared = prepare_bounded(c.get(), "after_copy", "SELECT 9");
  INFO(prepared.error << "\n" << mux.log_tail());
  CHECK(prepared.ok());
  CHECK(exec_prepared_bounded(c.get(), "after_copy", {}).value() == "9");
  // The backend went back to the pool: another client gets it (pool of 1).
  Connection other(mux.conninfo());
  CHECK(exec_bounded(other.get(), "SELECT count(*) FROM prepared_copy").value() == "1");
}

TEST_CASE("ordinary queries that merely mention DISCARD leave the backend's statements alone", "[prepared]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .http = true});
  Connection c(mux.conninfo());
  REQUIRE(c.ok());
  REQUIRE(prepare_bounded(c.get(), "x", "SELECT 1").ok());
  REQUIRE(exec_prepared_bounded(c.get(), "x", {}).value() == "1");
  double before = metric(mux, "pgmux_prepared_statements_lazy_total");
  for (int i = 0; i < 5; ++i) {
    REQUIRE(exec_bounded(c.get(), "SELECT 'not discarded' AS discarded_at").ok());
    CHECK(exec_prepared_bounded(c.get(), "x", {}).value() == "1");
  }
  CHECK(metric(mux, "pgmux_prepared_statements_lazy_total") == before);
}

TEST_CASE("SQL DEALLOCATE of a statement prepared through the protocol frees the name for that client only",
          "[prepared]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection a(mux.conninfo()), b(mux.conninfo());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(prepare_bounded(a.get(), "s1", "SELECT 10 + $1::int").ok());
  REQUIRE(prepare_bounded(b.get(), "s1", "SELECT 10 + $1::int").ok());
  Outcome gone = exec_bounded(a.get(), "DEALLOCATE S1");  // folded to s1, as Postgres does
  INFO(gone.error);
  REQUIRE(gone.ok());
  CHECK(std::string(PQcmdStatus(gone.result.get())) == "DEALLOCATE");
  CHECK(exec_prepared_bounded(a.get(), "s1", {"1"}).sqlstate == "26000");
  CHECK(exec_prepared_bounded(b.get(), "s1", {"1"}).value() == "11");
  // Inside a transaction it must not abort anything, and the name is free again at once.
  REQUIRE(exec_bounded(a.get(), "BEGIN").ok());
  REQUIRE(prepare_bounded(a.get(), "s1", "SELECT 20 + $1::int").ok());
  REQUIRE(exec_bounded(a.get(), "DEALLOCATE PREPARE s1").ok());
  REQUIRE(prepare_bounded(a.get(), "s1", "SELECT 30 + $1::int").ok());
  CHECK(exec_prepared_bounded(a.get(), "s1", {"1"}).value() == "31");
  REQUIRE(exec_bounded(a.get(), "COMMIT").ok());
  // A name the client never prepared is Postgres's error to give.
  CHECK(exec_bounded(a.get(), "DEALLOCATE never_prepared").sqlstate == "26000");
}
