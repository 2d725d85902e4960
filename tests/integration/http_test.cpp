// The HTTP listener: /healthz, /readyz and /metrics move as a real workload runs.

#include <catch2/catch.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "http_get.hpp"
#include "libpq.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;

TEST_CASE("/healthz and /readyz answer with JSON; an unknown path is a 404 with a JSON body", "[http]") {
  Pgmux mux(TestPostgres::shared(), {.http = true});
  GetReply health = http_get(mux.http_port(), "/healthz");
  CHECK(health.status == 200);
  CHECK(health.body == R"({"status":"ok"})");
  GetReply ready = http_get(mux.http_port(), "/readyz");
  CHECK(ready.status == 200);
  CHECK(ready.body == R"({"status":"ready"})");
  GetReply missing = http_get(mux.http_port(), "/nope");
  CHECK(missing.status == 404);
  CHECK(missing.body.find("\"error\"") != std::string::npos);
}

TEST_CASE("/readyz is 503 naming a database whose server cannot be reached", "[http]") {
  int closed_port = free_port();  // nothing listens there
  Pgmux mux(
      TestPostgres::shared(),
      {.databases_yaml = "  gone:\n    host: 127.0.0.1\n    port: " + std::to_string(closed_port) + "\n",
       .http = true});
  GetReply ready = http_get(mux.http_port(), "/readyz");
  CHECK(ready.status == 503);
  CHECK(ready.body == R"({"status":"unready","unreachable":["gone"]})");
}

TEST_CASE("/metrics counts each transaction and shows a waiting client while the pool is exhausted",
          "[http]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .http = true});
  Connection a(mux.conninfo()), b(mux.conninfo());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  a.value("SELECT 1");
  const std::string labels = "{database=\"app\",user=\"app\"}";
  std::string page = http_get(mux.http_port(), "/metrics").body;
  double before = sample(page, "pgmux_transactions_total" + labels);
  REQUIRE(before >= 1);
  for (int i = 0; i < 25; ++i) a.value("SELECT 1");
  page = http_get(mux.http_port(), "/metrics").body;
  CHECK(sample(page, "pgmux_transactions_total" + labels) == before + 25);
  CHECK(sample(page, "pgmux_pool_clients" + labels) == 2);
  CHECK(sample(page, "pgmux_clients_connected{protocol=\"postgres\"}") == 2);

  // a holds the only backend; b waits for it.
  a.value("BEGIN");
  a.value("SELECT 1");
  REQUIRE(PQsendQuery(b.get(), "SELECT 2") == 1);
  bool waiting = wait_until(
      [&] {
        return sample(http_get(mux.http_port(), "/metrics").body, "pgmux_pool_clients_waiting" + labels) == 1;
      },
      10s);
  CHECK(waiting);
  a.value("COMMIT");
  Result r(PQgetResult(b.get()));
  CHECK(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
  while (Result more{PQgetResult(b.get())}) {
  }
  page = http_get(mux.http_port(), "/metrics").body;
  CHECK(sample(page, "pgmux_pool_clients_waiting" + labels) == 0);
  // The histograms saw every borrow, and b's wait.
  CHECK(sample(page, "pgmux_transaction_duration_seconds_count" + labels) >= 27);
  CHECK(sample(page, "pgmux_pool_wait_seconds_count" + labels) >= 1);
  CHECK(sample(page, "pgmux_pool_wait_seconds_bucket{database=\"app\",user=\"app\",le=\"+Inf\"}") ==
        sample(page, "pgmux_pool_wait_seconds_count" + labels));
  // Every sample line has the shape the text format requires.
  std::regex line(R"(^(#.*|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.e+-]+(Inf|NaN)?)$)");
  std::istringstream lines(page);
  for (std::string l; std::getline(lines, l);) {
    INFO(l);
    CHECK(std::regex_match(l, line));
  }
}
