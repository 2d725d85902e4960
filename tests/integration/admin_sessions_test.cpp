// SHOW CLIENTS and SHOW SERVERS list the connections of every worker thread, in PgBouncer's columns.
#include <catch2/catch.hpp>
#include <map>

#include "bounded.hpp"
#include "libpq.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;

namespace {

// The rows of `r` as column name -> value maps.
std::vector<std::map<std::string, std::string>> rows_of(const Result& r) {
  std::vector<std::map<std::string, std::string>> rows;
  for (int row = 0; row < PQntuples(r.get()); ++row) {
    auto& values = rows.emplace_back();
    for (int c = 0; c < PQnfields(r.get()); ++c) values[PQfname(r.get(), c)] = PQgetvalue(r.get(), row, c);
  }
  return rows;
}

std::vector<std::map<std::string, std::string>> show(Connection& admin, const std::string& what) {
  Result r = admin.exec("SHOW " + what);
  REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
  return rows_of(r);
}

const std::map<std::string, std::string>* find_row(
    const std::vector<std::map<std::string, std::string>>& rows, const std::string& column,
    const std::string& value) {
  for (const auto& row : rows)
    if (row.at(column) == value) return &row;
  return nullptr;
}

}  // namespace

TEST_CASE("SHOW CLIENTS lists each connected client with its application_name and state", "[admin]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .extra_yaml = "admin_users: [app]\n"});
  Connection admin(mux.conninfo("app", "app-secret", "pgmux"));
  REQUIRE(admin.ok());
  // Several clients, so that with two workers both threads' lists are read.
  std::vector<std::unique_ptr<Connection>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(
        std::make_unique<Connection>(mux.conninfo() + " application_name=client-" + std::to_string(i)));
    REQUIRE(clients.back()->ok());
  }
  auto rows = show(admin, "CLIENTS");
  for (const char* column :
       {"type", "user", "database", "state", "addr", "port", "local_addr", "local_port", "connect_time",
        "request_time", "wait", "wait_us", "ptr", "link", "remote_pid", "tls", "application_name"}) {
    INFO(column);
    REQUIRE(!rows.empty());
    CHECK(rows[0].count(column) == 1);
  }
  for (int i = 0; i < 4; ++i) {
    const auto* row = find_row(rows, "application_name", "client-" + std::to_string(i));
    REQUIRE(row);
    CHECK(row->at("type") == "C");
    CHECK(row->at("user") == "app");
    CHECK(row->at("database") == "app");
    CHECK(row->at("state") == "active");
    CHECK(row->at("addr") == "127.0.0.1");
    CHECK(row->at("local_port") == std::to_string(mux.port()));
    CHECK(row->at("link") == "");  // holds no backend between transactions
  }

  // A client in a transaction is linked to its server; one queued behind it is waiting.
  REQUIRE(exec_bounded(clients[0]->get(), "BEGIN").ok());
  REQUIRE(PQsendQuery(clients[1]->get(), "SELECT 1") == 1);
  REQUIRE(wait_until(
      [&] {
        auto now = show(admin, "CLIENTS");
        const auto* waiting = find_row(now, "application_name", "client-1");
        return waiting && waiting->at("state") == "waiting";
      },
      10s));
  rows = show(admin, "CLIENTS");
  const auto* holder = find_row(rows, "application_name", "client-0");
  REQUIRE(holder);
  CHECK(holder->at("link") != "");
  auto servers = show(admin, "SERVERS");
  const auto* server = find_row(servers, "ptr", holder->at("link"));
  REQUIRE(server);
  CHECK(server->at("type") == "S");
  CHECK(server->at("state") == "active");
  CHECK(server->at("link") == holder->at("ptr"));
  CHECK(server->at("database") == "app");
  CHECK(server->at("port") == std::to_string(TestPostgres::shared().port()));
  CHECK(server->at("application_name") == "client-0");

  REQUIRE(exec_bounded(clients[0]->get(), "COMMIT").ok());
  bool timed_out = false;
  while (next_result(clients[1]->get(), std::chrono::steady_clock::now() + 10s, timed_out)) {
  }
  CHECK_FALSE(timed_out);
  // The backend's pid, as Postgres knows it, is SHOW SERVERS' remote_pid once it is idle in the pool.
  std::string pid = clients[2]->value("SELECT pg_backend_pid()");
  REQUIRE(wait_until(
      [&] {
        auto now = show(admin, "SERVERS");
        const auto* idle = find_row(now, "remote_pid", pid);
        return idle && idle->at("state") == "idle" && idle->at("link") == "";
      },
      10s));
}

TEST_CASE("psql prints SHOW STATS, SHOW CLIENTS and SHOW SERVERS", "[admin]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = "admin_users: [app]\n"});
  Connection client(mux.conninfo() + " application_name=psql-visible");
  REQUIRE(client.ok());
  REQUIRE(client.value("SELECT 1") == "1");
  std::string out;
  int status = run_shell("PGPASSWORD=app-secret timeout 20 psql -X \"" + mux.conninfo("app", "", "pgmux") +
                             "\" -c 'SHOW STATS' -c 'SHOW CLIENTS' -c 'SHOW SERVERS'",
                         &out);
  INFO(out);
  CHECK(status == 0);
  CHECK(out.find("total_xact_count") != std::string::npos);
  CHECK(out.find("avg_query_time") != std::string::npos);
  CHECK(out.find("psql-visible") != std::string::npos);
  CHECK(out.find("remote_pid") != std::string::npos);
}
