// /metrics under a real workload: counters move by exactly what went through, gauges show who waits, and the
// page is well-formed Prometheus text.
#include <catch2/catch.hpp>

#include "bounded.hpp"
#include "http_get.hpp"
#include "libpq.hpp"
#include "pgmux.hpp"
#include "prometheus_text.hpp"

using namespace pgmux::test;
using Clock = std::chrono::steady_clock;

namespace {

const std::map<std::string, std::string> kAppPool = {{"database", "app"}, {"user", "app"}};

PromPage scrape(const Pgmux& mux) {
  GetReply reply = http_get(mux.http_port(), "/metrics");
  REQUIRE(reply.status == 200);
  PromPage page = parse_prometheus_text(reply.body);
  INFO(reply.body);
  REQUIRE(page.error == "");
  return page;
}

std::map<std::string, std::string> with(std::map<std::string, std::string> labels, const std::string& name,
                                        const std::string& value) {
  labels[name] = value;
  return labels;
}

// Polls /metrics until `name{labels}` equals `value`: some figures move a moment after the client's answer.
bool reaches(const Pgmux& mux, const std::string& name, const std::map<std::string, std::string>& labels,
             double value) {
  return wait_until(
      [&] {
        return parse_prometheus_text(http_get(mux.http_port(), "/metrics").body).value(name, labels) == value;
      },
      10s);
}

}  // namespace

TEST_CASE("the Prometheus text reader refuses malformed pages", "[metrics]") {
  CHECK(parse_prometheus_text("# TYPE a counter\na 1\n").error == "");
  CHECK(parse_prometheus_text("a{b=\"x\"} 1\n").error == "");
  CHECK(parse_prometheus_text("a{b=\"x} 1\n").error != "");              // unterminated value
  CHECK(parse_prometheus_text("a{b=\"\\q\"} 1\n").error != "");          // bad escape
  CHECK(parse_prometheus_text("1a 1\n").error != "");                    // bad name
  CHECK(parse_prometheus_text("a one\n").error != "");                   // bad value
  CHECK(parse_prometheus_text("# TYPE a counter\na -1\n").error != "");  // negative counter
  CHECK(parse_prometheus_text("a 1\nb 1\na 2\n").error != "");           // family split up
  CHECK(parse_prometheus_text("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
                              "h_sum 1\nh_count 1\n")
            .error != "");  // not cumulative
  CHECK(parse_prometheus_text("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
                              "h_sum 1\nh_count 3\n")
            .error != "");  // +Inf differs from the count
}

TEST_CASE("after N transactions the transaction, query and query-duration counts rose by exactly N",
          "[metrics]") {
  Pgmux mux(TestPostgres::shared(), {.http = true});
  Connection client(mux.conninfo());
  REQUIRE(client.ok());
  REQUIRE(client.value("SELECT 1") == "1");  // the pool and its series exist from here on
  REQUIRE(reaches(mux, "pgmux_transactions_total", kAppPool, 1));
  PromPage before = scrape(mux);
  const double queries = before.value("pgmux_queries_total", kAppPool);
  const double timed = before.value("pgmux_query_duration_seconds_count", kAppPool);
  const double received = before.value("pgmux_client_bytes_received_total", kAppPool);
  const double sent = before.value("pgmux_client_bytes_sent_total", kAppPool);
  CHECK(before.value("pgmux_backend_connects_total", kAppPool) == 1);
  CHECK(timed == 1);

  constexpr int kTransactions = 25;
  for (int i = 0; i < kTransactions; ++i)
    REQUIRE(client.value("SELECT " + std::to_string(i)) == std::to_string(i));
  CHECK(reaches(mux, "pgmux_transactions_total", kAppPool, 1 + kTransactions));
  PromPage after = scrape(mux);
  CHECK(after.value("pgmux_transactions_total", kAppPool) == 1 + kTransactions);
  CHECK(after.value("pgmux_queries_total", kAppPool) == queries + kTransactions);
  CHECK(after.value("pgmux_query_duration_seconds_count", kAppPool) == timed + kTransactions);
  CHECK(after.value("pgmux_query_duration_seconds_sum", kAppPool) > 0);
  CHECK(after.value("pgmux_transaction_duration_seconds_count", kAppPool) == 1 + kTransactions);
  CHECK(after.value("pgmux_client_bytes_received_total", kAppPool) > received);
  CHECK(after.value("pgmux_client_bytes_sent_total", kAppPool) > sent);
  // One client, one at a time: one backend did it all.
  CHECK(after.value("pgmux_backend_connects_total", kAppPool) == 1);
  CHECK(after.value("pgmux_clients_connected", {{"protocol", "postgres"}}) == 1);
}

TEST_CASE("a client waiting for a backend shows in the waiting gauges until one is free", "[metrics]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .http = true});
  Connection holder(mux.conninfo()), waiter(mux.conninfo());
  REQUIRE(holder.ok());
  REQUIRE(waiter.ok());
  REQUIRE(exec_bounded(holder.get(), "BEGIN").ok());  // the only backend
  CHECK(reaches(mux, "pgmux_clients_active", {{"protocol", "postgres"}}, 1));
  CHECK(scrape(mux).value("pgmux_clients_waiting", {{"protocol", "postgres"}}) == 0);

  REQUIRE(PQsendQuery(waiter.get(), "SELECT 42") == 1);
  CHECK(reaches(mux, "pgmux_clients_waiting", {{"protocol", "postgres"}}, 1));
  PromPage page = scrape(mux);
  CHECK(page.value("pgmux_pool_clients_waiting", kAppPool) == 1);
  CHECK(page.value("pgmux_clients_active", {{"protocol", "postgres"}}) == 1);
  CHECK(page.value("pgmux_clients_waiting", {{"protocol", "websocket"}}) == 0);

  REQUIRE(exec_bounded(holder.get(), "COMMIT").ok());
  bool timed_out = false;
  Result r = next_result(waiter.get(), Clock::now() + 10s, timed_out);
  REQUIRE_FALSE(timed_out);
  REQUIRE(r);
  CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == "42");
  while (next_result(waiter.get(), Clock::now() + 10s, timed_out)) {
  }
  CHECK(reaches(mux, "pgmux_clients_waiting", {{"protocol", "postgres"}}, 0));
  CHECK(scrape(mux).value("pgmux_pool_wait_seconds_count", kAppPool) >= 1);
}

TEST_CASE("backend connects, connect failures and closes are counted by reason", "[metrics]") {
  Pgmux mux(TestPostgres::shared(),
            {.query_wait_timeout = "1s",
             .pool_yaml = "  server_idle_timeout: 1s\n",
             .databases_yaml = "  nowhere:\n    host: 127.0.0.1\n    port: 1\n    dbname: app\n",
             .http = true});
  {
    Connection client(mux.conninfo());
    REQUIRE(client.ok());
    REQUIRE(client.value("SELECT 1") == "1");
  }
  // The janitor closes the idle backend after server_idle_timeout.
  CHECK(reaches(mux, "pgmux_backend_closes_total", with(kAppPool, "reason", "idle_timeout"), 1));
  PromPage page = scrape(mux);
  CHECK(page.value("pgmux_backend_connects_total", kAppPool) == 1);
  CHECK(page.value("pgmux_backend_closes_total", with(kAppPool, "reason", "killed")) == 0);
  CHECK(page.value("pgmux_pool_backends", with(kAppPool, "state", "idle")) == 0);

  // Nothing listens on port 1: the login fails (08) and keeps being retried until query_wait_timeout.
  CHECK_FALSE(Connection(mux.conninfo("app", "app-secret", "nowhere")).ok());
  const std::map<std::string, std::string> nowhere = {{"database", "nowhere"}, {"user", "app"}};
  page = scrape(mux);
  CHECK(page.value("pgmux_backend_connect_failures_total", with(nowhere, "reason", "unreachable")) >= 1);
  CHECK(page.value("pgmux_backend_connects_total", nowhere) == 0);
}

TEST_CASE("with metrics.enabled: false nothing is counted per message, and /metrics still answers",
          "[metrics]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = "metrics:\n  enabled: false\n", .http = true});
  Connection client(mux.conninfo());
  REQUIRE(client.ok());
  for (int i = 0; i < 5; ++i) REQUIRE(client.value("SELECT 1") == "1");
  PromPage page = scrape(mux);
  CHECK(page.value("pgmux_transactions_total", kAppPool) == 0);
  CHECK(page.value("pgmux_queries_total", kAppPool) == 0);
  CHECK(page.value("pgmux_query_duration_seconds_count", kAppPool) == 0);
  CHECK(page.value("pgmux_client_bytes_sent_total", kAppPool) == 0);
  // What is not per message still is.
  CHECK(page.value("pgmux_backend_connects_total", kAppPool) == 1);
  CHECK(page.value("pgmux_client_logins_total", {{"protocol", "postgres"}, {"result", "ok"}}) == 1);
}

TEST_CASE("listen.metrics serves /metrics and the probes only, on a port of its own", "[metrics]") {
  Pgmux mux(TestPostgres::shared(), {.metrics = true});
  Connection client(mux.conninfo());
  REQUIRE(client.ok());
  REQUIRE(client.value("SELECT 1") == "1");
  GetReply page = http_get(mux.metrics_port(), "/metrics");
  REQUIRE(page.status == 200);
  PromPage parsed = parse_prometheus_text(page.body);
  CHECK(parsed.error == "");
  CHECK(parsed.value("pgmux_backend_connects_total", kAppPool) == 1);
  CHECK(http_get(mux.metrics_port(), "/healthz").status == 200);
  CHECK(http_get(mux.metrics_port(), "/readyz").status == 200);
  CHECK(http_get(mux.metrics_port(), "/sql").status == 404);  // no client traffic here
  CHECK(http_get(mux.metrics_port(), "/v2").status == 404);
}
