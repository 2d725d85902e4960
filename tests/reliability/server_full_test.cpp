// Postgres out of connection slots: clients of pgmux get an answer (served, or a clear error) instead of
// hanging, and are served again without any manual action once slots free up.
#include <catch2/catch.hpp>
#include <iostream>
#include <memory>
#include <set>

#include "bounded.hpp"
#include "load.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;
using Clock = std::chrono::steady_clock;

namespace {

struct Answer {
  bool ok = false;
  bool timed_out = false;
  std::string sqlstate, error, pid;
};

Answer ask(Connection& c) {
  Outcome o = exec_bounded(c.get(), "SELECT pg_backend_pid()", 30s);
  return {o.ok(), o.timed_out, o.sqlstate, o.error, o.value()};
}

// Client backends Postgres has right now, counted as the superuser over the Unix socket (which has slots of
// its own).
int client_backends() {
  return std::stoi(TestPostgres::shared().psql(
      "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"));
}

}  // namespace

TEST_CASE(
    "when Postgres has no connection slot left, clients get an answer, never a hang, and are served "
    "once slots free up",
    "[reliability][max-connections]") {
  constexpr int kClients = 8, kPoolSize = 6;
  Pgmux mux(TestPostgres::shared(), {.pool_size = kPoolSize, .query_wait_timeout = "10s"});

  // Every client logs in first, and one query opens the pool's first backend (pgmux learns the server's
  // parameters from it), so that what follows needs new backends and nothing else.
  std::vector<std::unique_ptr<Connection>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<Connection>(mux.conninfo()));
    INFO(clients.back()->error());
    REQUIRE(clients.back()->ok());
  }
  REQUIRE(ask(*clients[0]).ok);

  // Take every slot a non-superuser may have with direct connections of pgmux's own user.
  std::vector<std::unique_ptr<Connection>> held;
  std::string refusal;
  for (int i = 0; i < 400 && refusal.empty(); ++i) {
    auto c = std::make_unique<Connection>(TestPostgres::shared().conninfo("app", "app-secret"));
    if (c->ok())
      held.push_back(std::move(c));
    else
      refusal = c->error();
  }
  INFO("refusal: " << refusal);
  REQUIRE(!refusal.empty());
  // "sorry, too many clients already", or the slots kept for superusers once only those remain.
  bool out_of_slots =
      refusal.find("too many clients") != std::string::npos || refusal.find("reserved") != std::string::npos;
  REQUIRE(out_of_slots);

  // All clients at once while the server is full.
  std::vector<Answer> full(kClients);
  auto started = Clock::now();
  run_on_threads(kClients, [&](int i) { full[i] = ask(*clients[i]); });
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  int served = 0, refused = 0;
  for (int i = 0; i < kClients; ++i) {
    INFO("client " << i << ": " << full[i].error << mux.log_tail());
    CHECK(!full[i].timed_out);
    if (full[i].ok) {
      ++served;
    } else {
      ++refused;
      CHECK(full[i].sqlstate == "53300");  // too_many_connections, passed on from Postgres
    }
  }
  std::cout << "server full: " << held.size() << " direct connections held; " << served << " served, "
            << refused << " refused (53300) within " << waited.count() << " ms\n";
  CHECK(waited < 20s);

  // Free the slots and wait for Postgres to see them gone; then everyone is served, on the connection they
  // had when it survived the refusal.
  held.clear();
  REQUIRE(wait_until([] { return client_backends() < 50; }, 30s));
  int reconnected = 0;  // pgmux ends a session whose backend could not be opened
  for (auto& c : clients) {
    if (!c->ok()) {
      c = std::make_unique<Connection>(mux.conninfo());
      ++reconnected;
    }
  }
  std::vector<Answer> after(kClients);
  run_on_threads(kClients, [&](int i) { after[i] = ask(*clients[i]); });
  std::set<std::string> pids;
  for (int i = 0; i < kClients; ++i) {
    INFO("client " << i << ": " << after[i].error << mux.log_tail());
    CHECK(after[i].ok);
    pids.insert(after[i].pid);
  }
  std::cout << "server freed: " << kClients << " clients served on " << pids.size() << " backends; "
            << reconnected << " had to reconnect\n";
  CHECK(pids.size() <= static_cast<std::size_t>(kPoolSize));
}

// Clients queue while Postgres is full and are served once a slot frees: pgmux retries the server login
// until query_wait_timeout, as PgBouncer's server_login_retry does.
TEST_CASE("while Postgres is full, a client waits for a server connection instead of being refused",
          "[max-connections]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 4, .query_wait_timeout = "20s"});
  Connection holder(mux.conninfo()), waiter(mux.conninfo());
  REQUIRE(holder.ok());
  REQUIRE(waiter.ok());
  // The holder keeps the pool's only backend inside a transaction.
  REQUIRE(exec_bounded(holder.get(), "BEGIN").ok());
  REQUIRE(exec_bounded(holder.get(), "SELECT 1").ok());

  std::vector<std::unique_ptr<Connection>> held;
  for (int i = 0; i < 400; ++i) {
    auto c = std::make_unique<Connection>(TestPostgres::shared().conninfo("app", "app-secret"));
    if (!c->ok()) break;
    held.push_back(std::move(c));
  }
  REQUIRE(PQsendQuery(waiter.get(), "SELECT 42") == 1);
  // Only once pgmux has tried and failed to open a backend for it is the waiter really waiting on a full
  // server.
  REQUIRE(wait_until([&] { return mux.log().find("server connection to app failed") != std::string::npos; },
                     10s));
  // A slot frees up, and so does the holder's backend: either serves the waiter.
  held.clear();
  REQUIRE(wait_until([] { return client_backends() < 50; }, 30s));
  REQUIRE(exec_bounded(holder.get(), "COMMIT").ok());
  bool timed_out = false;
  Result r = next_result(waiter.get(), Clock::now() + 25s, timed_out);
  REQUIRE(!timed_out);
  REQUIRE(r);
  INFO(PQresultErrorMessage(r.get()));
  CHECK(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
}
