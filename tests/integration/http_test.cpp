// The HTTP listener: /healthz, /readyz and /metrics move as a real workload runs.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "libpq.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;

namespace {

struct HttpReply {
  int status = 0;
  std::string body;
};

// One GET with Connection: close, bounded by a 10 s receive timeout.
HttpReply http_get(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  HttpReply reply;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return reply;
  }
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  send(fd, request.data(), request.size(), 0);
  std::string all;
  char chunk[8192];
  for (ssize_t n; (n = recv(fd, chunk, sizeof chunk, 0)) > 0;) all.append(chunk, n);
  close(fd);
  if (all.size() > 12) reply.status = std::stoi(all.substr(9, 3));
  if (auto body = all.find("\r\n\r\n"); body != std::string::npos) reply.body = all.substr(body + 4);
  return reply;
}

// The value of one sample line ("name{labels} value") in a Prometheus text page; -1 when absent.
double sample(const std::string& page, const std::string& series) {
  auto at = page.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(page.substr(at + series.size() + 2));
}

}  // namespace

TEST_CASE("/healthz and /readyz answer with JSON; an unknown path is a 404 with a JSON body", "[http]") {
  Pgmux mux(TestPostgres::shared(), {.http = true});
  HttpReply health = http_get(mux.http_port(), "/healthz");
  CHECK(health.status == 200);
  CHECK(health.body == R"({"status":"ok"})");
  HttpReply ready = http_get(mux.http_port(), "/readyz");
  CHECK(ready.status == 200);
  CHECK(ready.body == R"({"status":"ready"})");
  HttpReply missing = http_get(mux.http_port(), "/nope");
  CHECK(missing.status == 404);
  CHECK(missing.body.find("\"error\"") != std::string::npos);
}

TEST_CASE("/readyz is 503 naming a database whose server cannot be reached", "[http]") {
  int closed_port = free_port();  // nothing listens there
  Pgmux mux(
      TestPostgres::shared(),
      {.databases_yaml = "  gone:\n    host: 127.0.0.1\n    port: " + std::to_string(closed_port) + "\n",
       .http = true});
  HttpReply ready = http_get(mux.http_port(), "/readyz");
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
