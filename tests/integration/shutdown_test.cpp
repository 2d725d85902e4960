// SIGTERM and the admin SHUTDOWN drain: transactions in flight finish, idle clients are told 57P01, pgmux
// exits 0; SIGINT is at once.
#include <poll.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <csignal>

#include "bounded.hpp"
#include "http_get.hpp"
#include "libpq.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;

namespace {

// What libpq hands the notice receiver (an error that arrives between queries lands there).
void collect(void* sink, const PGresult* r) {
  *static_cast<std::string*>(sink) += PQresultErrorMessage(r);
}

}  // namespace

TEST_CASE("SIGTERM lets a transaction in flight finish, tells idle clients 57P01 and exits 0", "[shutdown]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = "shutdown_timeout: 20s\n"});
  Connection idle(mux.conninfo()), busy(mux.conninfo()),
      direct(TestPostgres::shared().conninfo("app", "app-secret"));
  REQUIRE(idle.ok());
  REQUIRE(busy.ok());
  REQUIRE(direct.ok());
  std::string told;
  PQsetNoticeReceiver(idle.get(), collect, &told);
  CHECK(idle.value("SELECT 1") == "1");
  busy.value("BEGIN");
  std::string busy_pid = busy.value("SELECT pg_backend_pid()");

  REQUIRE(kill(mux.pid(), SIGTERM) == 0);
  // The idle client hears at once, without asking.
  pollfd p{PQsocket(idle.get()), POLLIN, 0};
  REQUIRE(poll(&p, 1, 10'000) == 1);
  PQconsumeInput(idle.get());
  PQisBusy(idle.get());
  CHECK(told.find("pgmux is shutting down") != std::string::npos);
  // New clients are turned away.
  CHECK(wait_until([&] { return !port_accepts(mux.port()); }, 10s));

  // The transaction goes on and commits; then its client is told too.
  CHECK(busy.value("SELECT 2") == "2");
  busy.value("COMMIT");
  Result after(PQexec(busy.get(), "SELECT 3"));
  CHECK(PQresultStatus(after.get()) == PGRES_FATAL_ERROR);

  int status = mux.wait_exit(15s);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  // Its backends were told goodbye, not left behind.
  CHECK(wait_until(
      [&] { return direct.value("SELECT count(*) FROM pg_stat_activity WHERE pid = " + busy_pid) == "0"; },
      10s));
}

TEST_CASE(
    "SIGTERM during a long statement lets it finish and its transaction commit, /readyz turns 503 at once",
    "[shutdown]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = "shutdown_timeout: 20s\n", .http = true});
  Connection busy(mux.conninfo()), direct(TestPostgres::shared().conninfo("app", "app-secret"));
  REQUIRE(busy.ok());
  REQUIRE(direct.ok());
  direct.value("CREATE TABLE IF NOT EXISTS shutdown_commits (id text PRIMARY KEY)");
  const std::string id = std::to_string(mux.pid());
  busy.value("BEGIN");
  busy.value("INSERT INTO shutdown_commits VALUES ('" + id + "')");
  REQUIRE(PQsendQuery(busy.get(), "SELECT pg_sleep(1.5)") == 1);

  REQUIRE(kill(mux.pid(), SIGTERM) == 0);
  CHECK(wait_until([&] { return http_get(mux.http_port(), "/readyz").status == 503; }, 1s));
  Outcome slept = [&] {
    bool timed_out = false;
    Outcome o;
    o.result = next_result(busy.get(), std::chrono::steady_clock::now() + 20s, timed_out);
    o.timed_out = timed_out;
    while (Result extra = next_result(busy.get(), std::chrono::steady_clock::now() + 5s, timed_out)) {
    }
    return o;
  }();
  REQUIRE(slept.result);
  CHECK(PQresultStatus(slept.result.get()) == PGRES_TUPLES_OK);
  Outcome commit = exec_bounded(busy.get(), "COMMIT", 10s);
  CHECK(commit.ok());

  int status = mux.wait_exit(15s);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(direct.value("SELECT count(*) FROM shutdown_commits WHERE id = '" + id + "'") == "1");
}

TEST_CASE("the admin console's SHUTDOWN drains as SIGTERM does and pgmux exits 0", "[shutdown]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = "shutdown_timeout: 20s\nadmin_users: [app]\n"});
  Connection admin(mux.conninfo("app", "app-secret", "pgmux")), idle(mux.conninfo()), busy(mux.conninfo());
  REQUIRE(admin.ok());
  REQUIRE(idle.ok());
  REQUIRE(busy.ok());
  std::string told;
  PQsetNoticeReceiver(idle.get(), collect, &told);
  CHECK(idle.value("SELECT 1") == "1");
  busy.value("BEGIN");
  busy.value("SELECT 1");

  Result shutdown = admin.exec("SHUTDOWN");
  CHECK(PQresultStatus(shutdown.get()) == PGRES_COMMAND_OK);
  pollfd p{PQsocket(idle.get()), POLLIN, 0};
  REQUIRE(poll(&p, 1, 10'000) == 1);
  PQconsumeInput(idle.get());
  PQisBusy(idle.get());
  CHECK(told.find("pgmux is shutting down") != std::string::npos);
  CHECK(wait_until([&] { return !port_accepts(mux.port()); }, 10s));
  CHECK(busy.value("SELECT 2") == "2");
  busy.value("COMMIT");
  // The admin session still open does not hold the exit back.
  int status = mux.wait_exit(15s);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
