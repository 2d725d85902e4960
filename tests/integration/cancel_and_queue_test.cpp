// Races around a client's backend: a cancel that arrives as its query ends, and a client that leaves while it
// waits in the pool's queue.
#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "bounded.hpp"
#include "http_get.hpp"
#include "libpq.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;
using Clock = std::chrono::steady_clock;

namespace {

// Clients of the app pool waiting for a backend, as /metrics says.
double pool_waiting(const Pgmux& mux) {
  return sample(http_get(mux.http_port(), "/metrics").body,
                "pgmux_pool_clients_waiting{database=\"app\",user=\"app\"}");
}

// With a pool of one: `holder` takes the backend into a transaction and keeps it there.
void hold_the_backend(Connection& holder) {
  REQUIRE(holder.ok());
  REQUIRE(exec_bounded(holder.get(), "BEGIN").ok());
  REQUIRE(exec_bounded(holder.get(), "SELECT 1").ok());
}

// Sends `sql` without waiting for its answer: with the backend held, it queues.
void send_to_queue(Connection& client, const char* sql) {
  REQUIRE(client.ok());
  REQUIRE(PQsendQuery(client.get(), sql) == 1);
  REQUIRE(PQflush(client.get()) == 0);
}

}  // namespace

TEST_CASE("a cancel sent as its query ends never reaches the next client's query on that backend",
          "[cancel]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection canceller(mux.conninfo()), bystander(mux.conninfo());
  REQUIRE(canceller.ok());
  REQUIRE(bystander.ok());
  std::atomic<bool> done{false};
  std::atomic<int> bystander_cancelled{0}, bystander_queries{0};
  std::string bystander_error;
  std::thread other([&] {
    while (!done) {
      Outcome o = exec_bounded(bystander.get(), "SELECT pg_sleep(0.0005)", 20s);
      ++bystander_queries;
      if (o.sqlstate == "57014")
        ++bystander_cancelled;
      else if (!o.ok() && bystander_error.empty())
        bystander_error = o.error;
    }
  });
  // Each cancel races with the end of the canceller's own query: it may stop that query, or arrive after it,
  // when the backend already serves the bystander.
  int cancelled_own = 0;
  for (int i = 0; i < 300; ++i) {
    REQUIRE(PQsendQuery(canceller.get(), "SELECT 1") == 1);
    PGcancel* cancel = PQgetCancel(canceller.get());
    char errbuf[256];
    PQcancel(cancel, errbuf, sizeof errbuf);
    PQfreeCancel(cancel);
    bool timed_out = false;
    while (Result r = next_result(canceller.get(), Clock::now() + 20s, timed_out))
      cancelled_own += sqlstate_of(r.get()) == "57014";
    REQUIRE_FALSE(timed_out);
  }
  done = true;
  other.join();
  INFO("the canceller's own queries cancelled: " << cancelled_own
                                                 << "; bystander queries: " << bystander_queries);
  INFO(bystander_error);
  CHECK(bystander_error.empty());
  CHECK(bystander_cancelled == 0);
  CHECK(bystander_queries > 0);
}

TEST_CASE("a client that leaves while queued for a backend is forgotten: its query never runs", "[cancel]") {
  Connection direct(TestPostgres::shared().conninfo("app", "app-secret"));
  REQUIRE(direct.ok());
  direct.value("DROP TABLE IF EXISTS queued_rows");
  direct.value("CREATE TABLE queued_rows (n int)");
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection holder(mux.conninfo());
  hold_the_backend(holder);

  {
    Connection leaver(mux.conninfo());
    send_to_queue(leaver, "INSERT INTO queued_rows VALUES (1)");
    // The INSERT is queued behind the holder when the leaver goes.
  }
  REQUIRE(wait_until([&] { return count_of(mux.log(), "waiting for a server connection left") == 1; }, 10s));
  REQUIRE(exec_bounded(holder.get(), "COMMIT").ok());
  // The pool's queue is first come, first served: a query after this one would have run after the INSERT.
  Connection next(mux.conninfo());
  REQUIRE(next.ok());
  CHECK(exec_bounded(next.get(), "SELECT count(*) FROM queued_rows").value() == "0");
  CHECK(direct.value("SELECT count(*) FROM queued_rows") == "0");
}

TEST_CASE("a client that leaves the queue gives its place up at once, not when a backend frees", "[cancel]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .http = true});
  Connection holder(mux.conninfo());
  hold_the_backend(holder);
  {
    Connection leaver(mux.conninfo());
    send_to_queue(leaver, "SELECT 2");
    REQUIRE(wait_until([&] { return pool_waiting(mux) == 1; }, 10s));
  }
  // The backend is still held: only the leaver's going can empty the queue.
  CHECK(wait_until([&] { return pool_waiting(mux) == 0; }, 10s));
  REQUIRE(exec_bounded(holder.get(), "COMMIT").ok());
  Connection next(mux.conninfo());
  REQUIRE(next.ok());
  CHECK(next.value("SELECT 3") == "3");
}

TEST_CASE("a queued client is given the place of a backend that died while it waited, and its query runs",
          "[cancel]") {
  Connection direct(TestPostgres::shared().conninfo("app", "app-secret"));
  REQUIRE(direct.ok());
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .http = true});
  Connection holder(mux.conninfo()), waiter(mux.conninfo());
  REQUIRE(holder.ok());
  const std::string pid = holder.value("SELECT pg_backend_pid()");  // the pool's one backend
  const std::string marker = "SELECT pg_sleep(30) /* queue-slot */";
  REQUIRE(PQsendQuery(holder.get(), marker.c_str()) == 1);
  REQUIRE(wait_until_running(direct, pid, marker));
  send_to_queue(waiter, "SELECT 41 + 1");
  REQUIRE(wait_until([&] { return pool_waiting(mux) == 1; }, 10s));
  // The backend goes: its slot passes to the waiter, which connects a new one.
  REQUIRE(direct.value("SELECT pg_terminate_backend(" + pid + ")") == "t");
  bool timed_out = false;
  Result r = next_result(waiter.get(), Clock::now() + 20s, timed_out);
  REQUIRE_FALSE(timed_out);
  REQUIRE(r);
  INFO(PQresultErrorMessage(r.get()));
  REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == "42");
  CHECK(pool_waiting(mux) == 0);
}
