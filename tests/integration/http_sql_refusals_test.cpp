// POST /sql against a real PostgreSQL: every refusal with its status and SQLSTATE, CORS, and the metrics.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <thread>

#include "libpq.hpp"
#include "neon_http.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;

TEST_CASE("requests pgmux refuses get a JSON error with a status and SQLSTATE, never a hang or a 5xx",
          "[http-sql]") {
  Pgmux mux(TestPostgres::shared(),
            {.pool_size = 1,
             .query_wait_timeout = "500ms",
             .extra_yaml = "http:\n  max_body_size: 2048\n  max_response_size: 65536\n"
                           "  max_queries_per_batch: 3\n  max_params_per_query: 4\n",
             .http = true,
             .users_yaml = "  - name: robot\n    password: robot-pass\n    http_tokens: [\"tok-1234\"]\n"});
  const int port = mux.http_port();
  SECTION("credentials") {
    refused(post(port, neon_call(query_body("SELECT 1"), "app", "wrong")), 401, "28P01");
    refused(post(port, neon_call(query_body("SELECT 1"), "nobody", "x")), 401, "28P01");
    refused(post(port, neon_call(query_body("SELECT 1"), "app", "")), 401, "28P01");
    ok(post(port, neon_call(query_body("SELECT 1"), "md5user", "md5-secret")));
    ok(post(port, neon_call(query_body("SELECT 1"), "plainuser", "plain-secret")));
    refused(post(port, neon_call(query_body("SELECT 1"), "md5user", "plain-secret")), 401, "28P01");
  }
  SECTION("Authorization: Basic and Bearer tokens") {
    HttpCall basic;
    basic.body = query_body("SELECT current_user");
    basic.headers = {{"Authorization", "Basic cGxhaW51c2VyOnBsYWluLXNlY3JldA=="},  // plainuser:plain-secret
                     {"Pgmux-Database", "app"},
                     {"Content-Type", "application/json"}};
    json::object answer = ok(post(port, basic));
    CHECK(answer["rows"] == json::parse(R"([{"current_user":"plainuser"}])"));
    HttpCall bearer = basic;
    bearer.headers[0].second = "Bearer tok-1234";
    bearer.headers[1].second = "forced";  // logs in to Postgres as app whoever the client is
    ok(post(port, bearer));
    bearer.headers[0].second = "Bearer tok-1235";
    refused(post(port, bearer), 401, "28P01");
  }
  SECTION("unknown database") {
    refused(post(port, neon_call(query_body("SELECT 1"), "app", "app-secret", "nope")), 400, "3D000");
  }
  SECTION("malformed requests") {
    refused(post(port, neon_call("{\"query\": \"SELECT 1\"")), 400, "08P01");
    refused(post(port, neon_call("[1]")), 400, "08P01");
    refused(post(port, neon_call(R"({"params": []})")), 400, "08P01");
    refused(post(port, neon_call(R"({"query": 5})")), 400, "08P01");
    json::array nested;
    nested.emplace_back(json::array{"a"});
    refused(post(port, neon_call(query_body("SELECT $1", nested))), 400, "22023");
    refused(post(port, neon_call(R"({"query": "SELECT 1", "params": "x"})")), 400, "22023");
    refused(post(port, neon_call(query_body("SELECT 1", {"1", "2", "3", "4", "5"}))), 400, "54023");
    refused(post(port, neon_call(R"({"queries": [{"query":"SELECT 1"},{"query":"SELECT 1"},)"
                                 R"({"query":"SELECT 1"},{"query":"SELECT 1"}]})")),
            400, "54000");
    HttpCall bad_header = neon_call(query_body("SELECT 1"));
    bad_header.headers.push_back({"Neon-Batch-Isolation-Level", "Chaos"});
    refused(post(port, bad_header), 400, "22023");
    refused(post(port, neon_call(R"({"query": "SELECT 1;\u0000 DROP TABLE x"})")), 400, "22021");
    HttpCall form = neon_call(query_body("SELECT 1"));
    form.headers[3].second = "application/x-www-form-urlencoded";
    refused(post(port, form), 415, "08P01");
  }
  SECTION("a body over http.max_body_size is a 413") {
    refused(post(port, neon_call(query_body("SELECT '" + std::string(3000, 'x') + "'"))), 413, "54000");
    // Much larger than the limit: the answer still arrives instead of a connection reset.
    refused(post(port, neon_call(query_body("SELECT '" + std::string(8 << 20, 'x') + "'"))), 413, "54000");
  }
  SECTION("SQL errors carry Postgres's fields") {
    json::object error =
        refused(post(port, neon_call(query_body("SELECT 1 FROM no_such_table"))), 400, "42P01");
    CHECK(error["position"] == "15");
    CHECK(error["severity"] == "ERROR");
    CHECK(error["routine"].is_string());
    refused(post(port, neon_call(query_body("SELECT 1/0"))), 400, "22012");
    refused(post(port, neon_call(query_body("SELECT $1::int", {"abc"}))), 400, "22P02");
    refused(post(port, neon_call(query_body("COPY (SELECT 1) TO STDOUT"))), 400, "0A000");
    // The backend is fine afterwards.
    ok(post(port, neon_call(query_body("SELECT 1"))));
  }
  SECTION("a result over http.max_response_size is 54000, and the backend is stopped, not left busy") {
    auto backend_pid = [&] {
      return ok(post(port, neon_call(query_body("SELECT pg_backend_pid()"))))["rows"].at(0).at(0);
    };
    const json::value before = backend_pid();
    refused(post(port, neon_call(query_body("SELECT repeat('x', 100) FROM generate_series(1, 2000000)"))),
            400, "54000");
    json::object answer = ok(post(port, neon_call(query_body("SELECT 7"))));
    CHECK(answer["rows"] == json::parse(R"([["7"]])"));
    // The cancel that stopped it could still land on whatever that server session runs next: not lent again.
    CHECK(backend_pid() != before);
  }
  SECTION("Pgmux-Statement-Timeout bounds a query, only that request's") {
    HttpCall slow = neon_call(query_body("SELECT pg_sleep(30)"));
    slow.headers.push_back({"Pgmux-Statement-Timeout", "100"});
    refused(post(port, slow), 400, "57014");
    json::object answer = ok(post(port, neon_call(query_body("SHOW statement_timeout"))));
    CHECK(answer["rows"] == json::parse(R"([["0"]])"));
  }
  SECTION("when the pool stays busy past query_wait_timeout the answer is 503 with the pool's SQLSTATE") {
    Connection holder(mux.conninfo());
    REQUIRE(holder.ok());
    holder.value("BEGIN");
    holder.value("SELECT 1");  // holds the only backend
    refused(post(port, neon_call(query_body("SELECT 1"))), 503, "57014");
    holder.value("COMMIT");
    ok(post(port, neon_call(query_body("SELECT 1"))));
  }
  SECTION("GET on /sql is a 405 with a JSON body") {
    HttpCall get = neon_call("");
    get.method = "GET";
    refused(post(port, get), 405, "08P01");
  }
}

TEST_CASE("CORS: allowed origins get the headers, OPTIONS answers the preflight", "[http-sql]") {
  Pgmux mux(TestPostgres::shared(),
            {.extra_yaml = "http:\n  cors_allowed_origins: [\"https://app.example\"]\n", .http = true});
  HttpCall preflight;
  preflight.method = "OPTIONS";
  preflight.headers = {{"Origin", "https://app.example"},
                       {"Access-Control-Request-Method", "POST"},
                       {"Access-Control-Request-Headers", "neon-connection-string"}};
  HttpReply reply = post(mux.http_port(), preflight);
  CHECK(reply.status == 204);
  CHECK(reply.header("Access-Control-Allow-Origin") == "https://app.example");
  CHECK(reply.header("Access-Control-Allow-Methods").find("POST") != std::string::npos);
  CHECK(reply.header("Access-Control-Allow-Headers").find("Neon-Connection-String") != std::string::npos);

  HttpCall call = neon_call(query_body("SELECT 1"));
  call.headers.push_back({"Origin", "https://app.example"});
  CHECK(post(mux.http_port(), call).header("Access-Control-Allow-Origin") == "https://app.example");
  call.headers.back().second = "https://evil.example";
  HttpReply other = post(mux.http_port(), call);
  CHECK(other.status == 200);
  CHECK(other.header("Access-Control-Allow-Origin").empty());
}

TEST_CASE("/metrics counts POST /sql answers by status", "[http-sql]") {
  Pgmux mux(TestPostgres::shared(), {.http = true});
  ok(post(mux.http_port(), neon_call(query_body("SELECT 1"))));
  refused(post(mux.http_port(), neon_call(query_body("SELECT 1/0"))), 400, "22012");
  HttpCall scrape;
  scrape.method = "GET";
  scrape.target = "/metrics";
  std::string page = post(mux.http_port(), scrape).body;
  CHECK(page.find("pgmux_http_sql_requests_total{code=\"200\"} 1") != std::string::npos);
  CHECK(page.find("pgmux_http_sql_requests_total{code=\"400\"} 1") != std::string::npos);
  CHECK(page.find("pgmux_http_sql_request_duration_seconds_count 2") != std::string::npos);
}

TEST_CASE("http.statement_timeout bounds every request unless Pgmux-Statement-Timeout says otherwise",
          "[http-sql]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = "http:\n  statement_timeout: 100ms\n", .http = true});
  refused(post(mux.http_port(), neon_call(query_body("SELECT pg_sleep(10)"))), 400, "57014");
  json::object inside = ok(post(mux.http_port(), neon_call(query_body("SHOW statement_timeout"))));
  CHECK(inside["rows"] == json::parse(R"([["100ms"]])"));
  HttpCall longer = neon_call(query_body("SELECT pg_sleep(0.3)"));
  longer.headers.push_back({"Pgmux-Statement-Timeout", "5000"});
  ok(post(mux.http_port(), longer));
  HttpCall off = neon_call(query_body("SHOW statement_timeout"));
  off.headers.push_back({"Pgmux-Statement-Timeout", "0"});
  CHECK(ok(post(mux.http_port(), off))["rows"] == json::parse(R"([["0"]])"));
}

TEST_CASE("SIGTERM lets a POST /sql in flight finish, answers new ones 503 57P01, then exits 0",
          "[http-sql][shutdown]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = "shutdown_timeout: 20s\n", .http = true});
  Connection direct(TestPostgres::shared().conninfo("app", "app-secret"));
  REQUIRE(direct.ok());
  HttpReply slow_reply;
  std::thread slow([&, port = mux.http_port()] {
    HttpConnection connection(port);
    slow_reply = connection.send(neon_call(query_body("SELECT pg_sleep(1.5), 42 AS marker")));
  });
  // In flight once Postgres runs it.
  CHECK(wait_until(
      [&] {
        return direct.value(
                   "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%42 AS marker%' AND "
                   "state = 'active' AND pid <> pg_backend_pid()") == "1";
      },
      10s));
  REQUIRE(kill(mux.pid(), SIGTERM) == 0);
  HttpReply late;
  CHECK(wait_until(
      [&] {
        HttpConnection connection(mux.http_port());
        late = connection.send(neon_call(query_body("SELECT 1")));
        return late.status == 503;
      },
      10s));
  CHECK(late.body.find("57P01") != std::string::npos);
  slow.join();
  CHECK(slow_reply.status == 200);
  CHECK(slow_reply.body.find(R"("42"]])") != std::string::npos);
  int status = mux.wait_exit(15s);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
