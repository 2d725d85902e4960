// Postgres breaking under load: restarted, a backend killed, the postmaster killed, everything frozen.
// Clients in flight get a connection-level error (never a hang, never a wrong answer) and service comes back
// by itself once Postgres does.
#include <signal.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <iostream>

#include "bounded.hpp"
#include "fault_load.hpp"
#include "load.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kClients = 12, kPoolSize = 6;

std::string idle_in_transaction(const TestPostgres& postgres) {
  // A backend's SIGKILL makes the postmaster reset them all, which on a busy machine can come after the
  // clients were served again; until its recovery ends psql is refused: "not yet known", for wait_until to
  // ask again.
  try {
    return postgres.psql(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND state LIKE 'idle in transaction%'");
  } catch (const std::exception& e) {
    return std::string("psql failed: ") + e.what();
  }
}

// The common shape: warm up, break something, wait for every client to succeed again, a little more traffic,
// then the figures and the assertions every fault shares.
template <class Fault>
void survive(const char* name, TestPostgres& postgres, Pgmux& mux, FaultLoad& load, Fault fault) {
  REQUIRE(load.wait_for_successes(10, 30s));
  auto before = load.successes();
  auto broken_at = Clock::now();
  fault();
  bool recovered = load.wait_recovered(broken_at, 60s);
  auto recovery = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - broken_at);
  auto at_recovery = load.successes();
  bool more = wait_until([&] { return load.successes() >= at_recovery + 10 * kClients; }, 20s);
  load.stop();
  std::cout << "[postgres-faults] " << name << ": every client served again " << recovery.count()
            << " ms after the fault; " << load.successes() - before << " transactions since; "
            << load.figures() << std::endl;
  INFO(load.figures() << "\n" << mux.log_tail());
  CHECK(mux.state() == "pgmux is running");
  CHECK(recovered);
  CHECK(more);
  CHECK(load.unexpected().empty());
  CHECK_FALSE(load.errors_by_kind().empty());  // the fault was felt
  CHECK(wait_until([&] { return idle_in_transaction(postgres) == "0"; }, 10s));
}

// Continues every process it stopped when it goes, so that a failed test does not leave Postgres frozen.
struct Frozen {
  std::vector<pid_t> pids;
  void thaw() {
    for (pid_t pid : pids) kill(pid, SIGCONT);
    pids.clear();
  }
  ~Frozen() { thaw(); }
};

}  // namespace

TEST_CASE("Postgres restarted (pg_ctl restart -m fast) under load", "[reliability][postgres-faults]") {
  TestPostgres postgres;
  Pgmux mux(postgres, {.pool_size = kPoolSize, .query_wait_timeout = "10s"});
  FaultLoad load(mux, kClients, 20s);
  survive("restart -m fast", postgres, mux, load, [&] { postgres.restart(); });
}

TEST_CASE("a backend killed with SIGKILL under load (Postgres resets every backend and recovers)",
          "[reliability][postgres-faults]") {
  TestPostgres postgres;
  Pgmux mux(postgres, {.pool_size = kPoolSize, .query_wait_timeout = "10s"});
  FaultLoad load(mux, kClients, 20s);
  survive("SIGKILL of one backend", postgres, mux, load, [&] {
    std::string pid = postgres.psql(
        "SELECT pid FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend' LIMIT 1");
    REQUIRE_FALSE(pid.empty());
    REQUIRE(kill(std::stoi(pid), SIGKILL) == 0);
  });
}

TEST_CASE("the postmaster killed with SIGKILL under load, then started again",
          "[reliability][postgres-faults]") {
  TestPostgres postgres;
  Pgmux mux(postgres, {.pool_size = kPoolSize, .query_wait_timeout = "10s"});
  FaultLoad load(mux, kClients, 20s);
  survive("SIGKILL of the postmaster", postgres, mux, load, [&] {
    pid_t postmaster = postgres.postmaster_pid();
    REQUIRE(postmaster > 0);
    REQUIRE(kill(postmaster, SIGKILL) == 0);
    // Its backends notice and exit; until the last has, Postgres will not start on the same data directory.
    REQUIRE(postgres.start_after_crash(60s));
  });
}

TEST_CASE(
    "Postgres frozen with SIGSTOP: requests in flight end with query_timeout, new ones within "
    "query_wait_timeout, and service resumes after SIGCONT",
    "[reliability][postgres-faults]") {
  const auto frozen_for = long_form() ? 10s : 4s;
  constexpr std::chrono::milliseconds kQueryTimeout = 1500ms, kConnectTimeout = 1s, kWaitTimeout = 3s;
  TestPostgres postgres;
  Pgmux mux(postgres, {.pool_size = kPoolSize,
                       .query_wait_timeout = "3s",
                       .pool_yaml = "  query_timeout: 1500ms\n  server_connect_timeout: 1s\n"});
  FaultLoad load(mux, kClients, 20s, /*allow_57014=*/true);
  Frozen frozen;
  survive("SIGSTOP of every Postgres process", postgres, mux, load, [&] {
    pid_t postmaster = postgres.postmaster_pid();
    REQUIRE(postmaster > 0);
    frozen.pids.push_back(postmaster);
    REQUIRE(kill(postmaster, SIGSTOP) == 0);
    for (pid_t child : postgres.server_children())
      if (kill(child, SIGSTOP) == 0) frozen.pids.push_back(child);
    // The clients run on while it is frozen; a wait with nothing to poll for.
    std::this_thread::sleep_for(frozen_for);
    frozen.thaw();
  });
  auto errors = load.errors_by_kind();
  // A request can wait at most for a backend (query_wait_timeout, a connect attempt inside it bounded by
  // server_connect_timeout) or for its answer (query_timeout), plus the sweep's period and scheduling slack.
  auto bound = kWaitTimeout + kConnectTimeout + 1500ms;
  std::cout << "[postgres-faults] frozen for " << frozen_for.count() << " s: longest failed request "
            << load.longest_failure().count() << " ms (bound " << bound.count() << " ms)" << std::endl;
  INFO(load.figures());
  CHECK(errors["57014"] > 0);  // requests in flight were cut by query_timeout
  CHECK(load.longest_failure() < bound);
  CHECK(load.longest_failure() >= kQueryTimeout - 100ms);
  // Each request cut by query_timeout heard of it within the sweep's period and some scheduling slack.
  long long cut = 0, longest_cut_ms = 0;
  for (const auto& f : load.failures()) {
    if (f.error.find("query_timeout") == std::string::npos) continue;
    ++cut;
    longest_cut_ms = std::max(longest_cut_ms, f.took_ms);
  }
  std::cout << "[postgres-faults] frozen: " << cut
            << " requests cut by query_timeout (1500 ms), the slowest after " << longest_cut_ms << " ms"
            << std::endl;
  INFO(load.failure_log());
  CHECK(cut > 0);
  CHECK(longest_cut_ms < (kQueryTimeout + 1s).count());
  std::string log = mux.log();
  CHECK(log.find("query_timeout: closing a server connection") != std::string::npos);
  // New backends were tried and given up on within server_connect_timeout.
  CHECK(log.find("server_connect_timeout") != std::string::npos);
}

TEST_CASE(
    "a client that leaves mid-query while Postgres is frozen gives its backend slot back within the cancel "
    "request's 5 s bound, not when the server wakes",
    "[reliability][postgres-faults]") {
  TestPostgres postgres;
  Pgmux mux(postgres, {.pool_size = 1, .query_wait_timeout = "20s", .extra_yaml = "admin_users: [app]\n"});
  Connection direct(postgres.conninfo("app", "app-secret"));
  REQUIRE(direct.ok());
  Connection admin(mux.conninfo("app", "app-secret", "pgmux"));
  REQUIRE(admin.ok());
  // Backends pgmux counts as lent out in the pool (app, app), from SHOW POOLS (pgmux answers it alone).
  auto lent = [&] {
    Result pools = admin.exec("SHOW POOLS");
    int column = PQfnumber(pools.get(), "sv_active");
    for (int row = 0; column >= 0 && row < PQntuples(pools.get()); ++row)
      if (std::string(PQgetvalue(pools.get(), row, 0)) == "app" &&
          std::string(PQgetvalue(pools.get(), row, 1)) == "app")
        return std::string(PQgetvalue(pools.get(), row, column));
    return std::string("?");
  };
  Frozen frozen;
  {
    Connection doomed(mux.conninfo());
    REQUIRE(doomed.ok());
    std::string pid = doomed.value("SELECT pg_backend_pid()");
    REQUIRE(PQsendQuery(doomed.get(), "SELECT pg_sleep(60)") == 1);
    REQUIRE(wait_until(
        [&] { return direct.value("SELECT state FROM pg_stat_activity WHERE pid = " + pid) == "active"; },
        10s));
    REQUIRE(lent() == "1");
    pid_t postmaster = postgres.postmaster_pid();
    REQUIRE(postmaster > 0);
    frozen.pids.push_back(postmaster);
    REQUIRE(kill(postmaster, SIGSTOP) == 0);
    for (pid_t child : postgres.server_children())
      if (kill(child, SIGSTOP) == 0) frozen.pids.push_back(child);
    shutdown(PQsocket(doomed.get()), SHUT_RDWR);  // gone mid-query: pgmux sends a cancel nobody reads
  }
  auto left_at = Clock::now();
  bool freed = wait_until([&] { return lent() == "0"; }, 15s);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - left_at);
  frozen.thaw();
  std::cout << "[postgres-faults] a client left mid-query on a frozen server: its backend slot freed after "
            << took.count() << " ms" << std::endl;
  INFO(mux.log_tail());
  CHECK(freed);
  CHECK(took < 8s);
  // Once the server wakes, the pool's one slot serves again.
  Connection next(mux.conninfo());
  REQUIRE(next.ok());
  Outcome o = exec_bounded(next.get(), "SELECT 1", 30s);
  INFO(o.error);
  CHECK(o.value() == "1");
}
