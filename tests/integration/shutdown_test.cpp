// SIGTERM drains: transactions in flight finish, idle clients are told 57P01, pgmux exits 0; SIGINT is at
// once.
#include <poll.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <csignal>

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
