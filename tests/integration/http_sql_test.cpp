// POST /sql against a real PostgreSQL: the Neon driver's request and answer shapes, types, batches as one
// transaction, keep-alive, and many clients on a small pool.
#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <set>

#include "bounded.hpp"
#include "http_client.hpp"
#include "libpq.hpp"
#include "neon_http.hpp"
#include "pgmux.hpp"
#include "pgmux/auth/crypto.hpp"

using namespace pgmux::test;
namespace json = boost::json;

namespace {

// A client of its own connection sending two requests, each selecting a value only it uses. `outcome` gets
// the backend pid of its last answer, or what went wrong.
boost::asio::awaitable<void> two_requests(int port, int i, std::string& outcome) {
  boost::beast::tcp_stream stream(co_await boost::asio::this_coro::executor);
  stream.expires_after(std::chrono::seconds(60));
  // Arguments built outside co_await expressions: GCC 12 miscompiles braced initializers inside them.
  const boost::asio::ip::tcp::endpoint server(boost::asio::ip::address_v4::loopback(),
                                              static_cast<unsigned short>(port));
  auto [ec] = co_await stream.async_connect(server, boost::asio::as_tuple(boost::asio::use_awaitable));
  if (ec) {
    outcome = "connect: " + ec.message();
    co_return;
  }
  boost::beast::flat_buffer buffer;
  for (int round = 0; round < 2; ++round) {
    const std::string mine = std::to_string(i * 1000 + round);
    json::array params;
    params.emplace_back(mine);
    const HttpCall call = neon_call(query_body("SELECT $1::int AS mine, pg_backend_pid()", params));
    HttpReply reply = co_await http_exchange(stream, buffer, call, std::chrono::seconds(60));
    if (reply.status != 200) {
      outcome = "status " + std::to_string(reply.status) + " " + reply.body + reply.error;
      co_return;
    }
    json::value answer = json::parse(reply.body);
    if (answer.at("rows").at(0).at(0) != json::value(mine)) {
      outcome = "wrong row for " + mine + ": " + reply.body;
      co_return;
    }
    outcome = std::string(answer.at("rows").at(0).at(1).as_string());
  }
}

}  // namespace

TEST_CASE("a single query answers with the driver's JSON: command, rowCount, rows, fields, rowAsArray",
          "[http-sql]") {
  Pgmux mux(TestPostgres::shared(), {.http = true});
  json::object answer =
      ok(post(mux.http_port(), neon_call(query_body("SELECT $1::int AS a, 'x' AS b", {"41"}))));
  CHECK(answer["command"] == "SELECT");
  CHECK(answer["rowCount"] == 1);
  CHECK(answer["rowAsArray"] == true);
  CHECK(answer["rows"] == json::parse(R"([["41","x"]])"));
  CHECK(answer["fields"].as_array()[0] ==
        json::parse(R"({"name":"a","dataTypeID":23,"tableID":0,"columnID":0,"dataTypeSize":4,)"
                    R"("dataTypeModifier":-1,"format":"text"})"));
  CHECK(answer["fields"].as_array()[1].at("dataTypeID") == 25);

  SECTION("without Neon-Array-Mode rows are objects keyed by field name") {
    HttpCall call = neon_call(query_body("SELECT 1 AS one, NULL::text AS \"quo\"\"te\""));
    call.headers.erase(call.headers.begin() + 2);
    json::object objects = ok(post(mux.http_port(), call));
    CHECK(objects["rows"] == json::parse(R"([{"one":"1","quo\"te":null}])"));
    CHECK(objects["rowAsArray"] == false);
  }
  SECTION("INSERT, UPDATE and DDL report their command and row count as CommandComplete does") {
    ok(post(mux.http_port(), neon_call(query_body("DROP TABLE IF EXISTS http_counts"))));
    json::object created =
        ok(post(mux.http_port(), neon_call(query_body("CREATE TABLE http_counts (id int, note text)"))));
    CHECK(created["command"] == "CREATE");
    CHECK(created["rowCount"].is_null());
    CHECK(created["rows"] == json::array());
    json::object inserted = ok(post(
        mux.http_port(),
        neon_call(query_body("INSERT INTO http_counts SELECT g, $1 FROM generate_series(1, 3) g", {"n"}))));
    CHECK(inserted["command"] == "INSERT");
    CHECK(inserted["rowCount"] == 3);
    json::object updated =
        ok(post(mux.http_port(), neon_call(query_body("UPDATE http_counts SET note = 'm' WHERE id > 1"))));
    CHECK(updated["command"] == "UPDATE");
    CHECK(updated["rowCount"] == 2);
  }
}

TEST_CASE("every common type comes back as Postgres's own text output, value by value", "[http-sql]") {
  Pgmux mux(TestPostgres::shared(), {.http = true});
  const std::string tricky = "naïve \"quoted\" 'single' back\\slash\nnew line\ttab \x01 日本 🐘";
  // Columns: expression, type OID, expected text (checked against libpq on the same expression too).
  struct Column {
    std::string expression;
    int oid;
  };
  const std::vector<Column> columns = {
      {"$1::int2", 21},    {"$2::int4", 23},    {"$3::int8", 20},      {"$4::numeric", 1700},
      {"$5::float8", 701}, {"$6::float4", 700}, {"$7::bool", 16},      {"$8::text", 25},
      {"$9::bytea", 17},   {"$10::json", 114},  {"$11::jsonb", 3802},  {"$12::timestamptz", 1184},
      {"$13::date", 1082}, {"$14::uuid", 2950}, {"$15::int4[]", 1007}, {"$16::text[]", 1009},
      {"$17::text", 25},
  };
  json::array params = {"-32768",
                        "2147483647",
                        "9007199254740993",
                        "12345678901234567890.123456789",
                        "1.5e300",
                        "0.25",
                        "t",
                        tricky,
                        "\\x00ff10",
                        R"({"a": [1, 2, {"b": null}]})",
                        R"({"b": 1, "a": "x"})",
                        "2024-02-29 13:14:15.123456+02",
                        "2024-02-29",
                        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                        "{1,2,NULL,4}",
                        R"({"a b","c\"d",NULL})",
                        nullptr};
  std::string sql = "SELECT ";
  for (std::size_t i = 0; i < columns.size(); ++i) sql += (i ? ", " : "") + columns[i].expression;
  json::object answer = ok(post(mux.http_port(), neon_call(query_body(sql, params))));
  const json::array& row = answer["rows"].as_array().at(0).as_array();
  const json::array& fields = answer["fields"].as_array();
  REQUIRE(row.size() == columns.size());

  // The same values through libpq straight to Postgres, as text.
  Connection direct(TestPostgres::shared().conninfo("app", "app-secret"));
  REQUIRE(direct.ok());
  std::vector<std::string> texts;
  std::vector<const char*> values;
  for (const auto& p : params) texts.push_back(p.is_null() ? "" : std::string(p.as_string()));
  for (std::size_t i = 0; i < params.size(); ++i)
    values.push_back(params[i].is_null() ? nullptr : texts[i].c_str());
  Result expected(PQexecParams(direct.get(), sql.c_str(), static_cast<int>(values.size()), nullptr,
                               values.data(), nullptr, nullptr, 0));
  REQUIRE(PQresultStatus(expected.get()) == PGRES_TUPLES_OK);
  for (std::size_t i = 0; i < columns.size(); ++i) {
    INFO("column " << i << ": " << columns[i].expression);
    CHECK(fields[i].at("dataTypeID") == columns[i].oid);
    if (PQgetisnull(expected.get(), 0, static_cast<int>(i))) {
      CHECK(row[i].is_null());
    } else {
      REQUIRE(row[i].is_string());
      CHECK(std::string(row[i].as_string()) == PQgetvalue(expected.get(), 0, static_cast<int>(i)));
    }
  }
  // And a few spelled out, so that a change in both paths would still be caught.
  CHECK(row[2] == "9007199254740993");
  CHECK(row[3] == "12345678901234567890.123456789");
  CHECK(row[6] == "t");
  CHECK(row[7] == json::value(tricky));
  CHECK(row[8] == "\\x00ff10");
  CHECK(row[10] == R"({"a": "x", "b": 1})");
  CHECK(row[13] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
  CHECK(row[14] == "{1,2,NULL,4}");
  CHECK(row[16].is_null());
}

TEST_CASE("a batch runs as one transaction with the requested isolation and access mode", "[http-sql]") {
  Pgmux mux(TestPostgres::shared(), {.http = true});
  ok(post(mux.http_port(), neon_call(query_body("DROP TABLE IF EXISTS http_batch"))));
  ok(post(mux.http_port(), neon_call(query_body("CREATE TABLE http_batch (id int PRIMARY KEY, note text)"))));
  auto batch = [](std::vector<std::pair<std::string, json::array>> queries) {
    json::array items;
    for (auto& [sql, params] : queries) items.push_back(json::object{{"query", sql}, {"params", params}});
    return json::serialize(json::object{{"queries", items}});
  };

  SECTION("a batch that succeeds commits everything, with one result per query") {
    json::object answer =
        ok(post(mux.http_port(), neon_call(batch({
                                     {"INSERT INTO http_batch VALUES ($1, $2)", {"1", "one"}},
                                     {"INSERT INTO http_batch VALUES ($1, $2)", {"2", "two"}},
                                     {"SELECT txid_current() AS a", {}},
                                     {"SELECT count(*) AS n, txid_current() AS b FROM http_batch", {}},
                                 }))));
    const json::array& results = answer["results"].as_array();
    REQUIRE(results.size() == 4);
    CHECK(results[0].at("command") == "INSERT");
    CHECK(results[0].at("rowCount") == 1);
    // One transaction: the same transaction id in both queries.
    CHECK(results[2].at("rows").at(0).at(0) == results[3].at("rows").at(0).at(1));
    CHECK(results[3].at("rows").at(0).at(0) == "2");
    json::object after = ok(post(mux.http_port(), neon_call(query_body("SELECT count(*) FROM http_batch"))));
    CHECK(after["rows"] == json::parse(R"([["2"]])"));
  }
  SECTION("a failing query rolls back the whole batch, and the backend is clean for the next request") {
    HttpReply failed =
        post(mux.http_port(), neon_call(batch({
                                  {"INSERT INTO http_batch VALUES ($1, $2)", {"10", "kept?"}},
                                  {"INSERT INTO http_batch VALUES ($1, $2)", {"10", "duplicate"}},
                                  {"SELECT 1", {}},
                              })));
    json::object error = refused(failed, 400, "23505");
    CHECK(error["constraint"] == "http_batch_pkey");
    CHECK(error["table"] == "http_batch");
    CHECK(error["schema"] == "public");
    CHECK(error["severity"] == "ERROR");
    CHECK(std::string(error["detail"].as_string()).find("(id)=(10)") != std::string::npos);
    json::object after =
        ok(post(mux.http_port(),
                neon_call(query_body("SELECT count(*), now() = statement_timestamp() FROM http_batch"))));
    CHECK(after["rows"].at(0).at(0) == "0");
  }
  SECTION("isolation level, read only and deferrable reach the transaction") {
    HttpCall call =
        neon_call(batch({{"SELECT current_setting('transaction_isolation'), "
                          "current_setting('transaction_read_only'), "
                          "current_setting('transaction_deferrable')",
                          {}}}));
    call.headers.push_back({"Neon-Batch-Isolation-Level", "Serializable"});
    call.headers.push_back({"Neon-Batch-Read-Only", "true"});
    call.headers.push_back({"Neon-Batch-Deferrable", "true"});
    json::object answer = ok(post(mux.http_port(), call));
    CHECK(answer["results"].at(0).at("rows") == json::parse(R"([["serializable","on","on"]])"));
    HttpCall write = neon_call(batch({{"INSERT INTO http_batch VALUES (20, 'no')", {}}}));
    write.headers.push_back({"Neon-Batch-Read-Only", "true"});
    refused(post(mux.http_port(), write), 400, "25006");
  }
}

TEST_CASE("one keep-alive connection carries many requests", "[http-sql]") {
  Pgmux mux(TestPostgres::shared(), {.http = true});
  HttpConnection connection(mux.http_port());
  REQUIRE(connection.connected());
  for (int i = 0; i < 50; ++i) {
    HttpReply reply = connection.send(neon_call(query_body("SELECT $1::int * 2", {std::to_string(i)})));
    REQUIRE(reply.status == 200);
    CHECK(reply.keep_alive);
    CHECK(parse_object(reply)["rows"].at(0).at(0) == json::value(std::to_string(i * 2)));
  }
  // A failed request keeps the connection too.
  HttpReply failed = connection.send(neon_call(query_body("SELECT 1/0")));
  CHECK(failed.status == 400);
  CHECK(connection.send(neon_call(query_body("SELECT 1"))).status == 200);
}

TEST_CASE("500 concurrent HTTP clients on a pool of 10 each get their own answer", "[http-sql]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 10, .http = true});
  constexpr int kClients = 500;
  boost::asio::io_context io;
  std::vector<std::string> outcomes(kClients);
  for (int i = 0; i < kClients; ++i) {
    boost::asio::co_spawn(io, two_requests(mux.http_port(), i, outcomes[i]), boost::asio::detached);
  }
  io.run_for(std::chrono::seconds(120));
  std::set<std::string> backend_pids;
  for (int i = 0; i < kClients; ++i) {
    INFO("client " << i << ": " << outcomes[i]);
    REQUIRE(!outcomes[i].empty());
    REQUIRE(outcomes[i].find_first_not_of("0123456789") == std::string::npos);
    backend_pids.insert(outcomes[i]);
  }
  CHECK(backend_pids.size() <= 10);  // the pool's bound held
}

TEST_CASE("a wire client's DateStyle does not leak into HTTP answers on the same backend", "[http-sql]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .http = true});
  Connection german(mux.conninfo() + " options='-c DateStyle=German'");
  REQUIRE(german.ok());
  CHECK(german.value("SELECT '2024-02-29'::date") == "29.02.2024");
  json::object answer = ok(post(mux.http_port(), neon_call(query_body("SELECT '2024-02-29'::date"))));
  CHECK(answer["rows"] == json::parse(R"([["2024-02-29"]])"));
  CHECK(german.value("SELECT '2024-02-29'::date") == "29.02.2024");
}

TEST_CASE("a request that SETs a session setting does not pass it on to the next borrower", "[http-sql]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .http = true});
  const std::string before = std::string(
      ok(post(mux.http_port(), neon_call(query_body("SHOW search_path"))))["rows"].at(0).at(0).as_string());
  ok(post(mux.http_port(), neon_call(query_body("SET search_path = pg_catalog"))));
  json::object after = ok(post(mux.http_port(), neon_call(query_body("SHOW search_path"))));
  CHECK(after["rows"].at(0).at(0) == json::value(before));
}

// What the command tag does not show (CREATE TABLE says nothing of TEMP, SELECT nothing of a lock or of
// set_config) must not pass on either: a pool of one, so the next request gets the same server session unless
// the first one's was closed.
TEST_CASE("session state a request leaves behind its command tags never reaches the next request",
          "[http-sql]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .http = true});
  auto value = [&](const std::string& sql) {
    json::object answer = ok(post(mux.http_port(), neon_call(query_body(sql))));
    return answer["rows"].at(0).at(0);
  };
  SECTION("a temporary table and its rows") {
    ok(post(mux.http_port(), neon_call(query_body("CREATE TEMP TABLE http_secret AS SELECT 'mine' AS v"))));
    CHECK(value("SELECT count(*) FROM pg_class WHERE relname = 'http_secret' AND relnamespace = "
                "pg_my_temp_schema()") == json::value("0"));
  }
  SECTION("a table made by SELECT INTO TEMP") {
    ok(post(mux.http_port(), neon_call(query_body("SELECT 'mine' AS v INTO TEMP http_into"))));
    CHECK(value("SELECT count(*) FROM pg_class WHERE relname = 'http_into' AND relnamespace = "
                "pg_my_temp_schema()") == json::value("0"));
  }
  SECTION("a session advisory lock") {
    ok(post(mux.http_port(), neon_call(query_body("SELECT pg_advisory_lock(424242)"))));
    Connection other(TestPostgres::shared().conninfo("app", "app-secret"));
    REQUIRE(other.ok());
    // Released when the server session that took it ends, which may be a moment after pgmux closed it.
    REQUIRE(exec_bounded(other.get(), "SET lock_timeout = '10s'").ok());
    Outcome taken = exec_bounded(other.get(), "SELECT pg_advisory_lock(424242)");
    CHECK(taken.sqlstate == "");  // 55P03 if a pooled server session still held it
    CHECK(other.value("SELECT pg_advisory_unlock(424242)") == "t");
  }
  SECTION("a setting changed for the session by set_config") {
    const json::value before = value("SHOW work_mem");
    REQUIRE(before != json::value("1234kB"));
    ok(post(mux.http_port(), neon_call(query_body("SELECT set_config('work_mem', '1234kB', false)"))));
    CHECK(value("SHOW work_mem") == before);
  }
}

TEST_CASE("a 9 MB query reaches Postgres byte for byte: the write goes on after what the socket took at once",
          "[http-sql]") {
  // Far more than a socket's send buffer holds: pgmux's write to the backend sends what the socket takes
  // without waiting, then must send the rest.
  Pgmux mux(TestPostgres::shared(), {.http = true});
  std::string text(9'000'000, 'x');
  for (std::size_t i = 0; i < text.size(); i += 997) text[i] = static_cast<char>('a' + (i / 997) % 26);
  json::object answer =
      ok(post(mux.http_port(),
              neon_call(query_body("SELECT length(t), md5(t) FROM (VALUES ('" + text + "')) v(t)"))));
  CHECK(answer["rows"] == json::array{json::array{"9000000", json::string(pgmux::auth::md5_hex(text))}});
  json::object after = ok(post(mux.http_port(), neon_call(query_body("SELECT 'next'"))));
  CHECK(after["rows"] == json::parse(R"([["next"]])"));
}
