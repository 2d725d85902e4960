// Zero-downtime restart: a pgmux started with --takeover receives the running one's listening sockets, the
// old one drains and exits 0, and clients connecting all the while never see a failure.
#include <sys/syscall.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <numeric>
#include <optional>
#include <thread>

#include "bounded.hpp"
#include "http_get.hpp"
#include "libpq.hpp"
#include "pending_logins.hpp"
#include "pgmux.hpp"
#include "raw_socket.hpp"
#include "tcp_listeners.hpp"

using namespace pgmux::test;

namespace {

// A serverless client: a new connection for every transaction (the statements of `sql`), as a function
// invocation makes, until `stop` (bounded: 5000 at most, stopped by the main thread long before). Counts each
// one that completes in `done`; the first failure ends it, noted in `failures`.
void serverless_client(int id, const std::string& conninfo, std::initializer_list<const char*> sql,
                       const std::atomic<bool>& stop, std::atomic<int>& done, Failures& failures) {
  for (int n = 0; n < 5000 && !stop.load(); ++n) {
    Connection c(conninfo);
    if (!c.ok()) return failures.add("client " + std::to_string(id) + " connect: " + c.error());
    // The old process says 57P01 after a transaction it let finish: expected, and not worth printing.
    PQsetNoticeProcessor(
        c.get(), [](void*, const char*) {}, nullptr);
    for (const char* statement : sql) {
      Outcome o = exec_bounded(c.get(), statement, 20s);
      if (!o.ok()) return failures.add("client " + std::to_string(id) + ": " + statement + ": " + o.error);
    }
    done.fetch_add(1);
  }
}

}  // namespace

TEST_CASE("a restart with --takeover under a client loop loses no transaction", "[restart]") {
  TestPostgres& postgres = TestPostgres::shared();
  const PgmuxOptions options{.extra_yaml = "shutdown_timeout: 20s\n", .http = true};
  auto old_mux = std::make_unique<Pgmux>(postgres, options);

  // Serverless clients, a new connection per transaction.
  Failures failures;
  std::atomic<bool> stop{false};
  std::atomic<int> committed{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i)
    clients.emplace_back([&, i] {
      serverless_client(i, old_mux->conninfo(), {"BEGIN", "SELECT 1", "COMMIT"}, stop, committed, failures);
    });
  // And bare connections as fast as they go, so that some are sure to wait in an accept queue at the switch:
  // each must get its answer (pgmux declines TLS with 'N', then refuses a startup packet without a user with
  // 28000), never a reset.
  std::atomic<int> probes{0};
  for (int i = 0; i < 2; ++i) {
    clients.emplace_back([&, i] {
      const std::string ssl_request = be32(8) + be32(80877103);
      const std::string no_user =
          be32(4 + 4 + 9 + 4 + 1) + be32(196608) + std::string("database\0app\0\0", 14);
      for (int n = 0; n < 200000 && !stop.load(); ++n) {  // bounded
        RawSocket probe(old_mux->port());
        std::string got;
        if (!probe.connected() || !probe.send_all(ssl_request + no_user) ||
            !probe.read_until_closed(got, 10s) || got.empty() || got[0] != 'N' ||
            error_response_sqlstate(got.substr(1)) != "28000")
          return failures.add("probe " + std::to_string(i) + " after " + std::to_string(n) + ": got " +
                              std::to_string(got.size()) + " byte(s)");
        probes.fetch_add(1);
      }
    });
  }
  // And one client in the middle of a transaction across the switch: it commits on the old process.
  Connection long_lived(old_mux->conninfo());
  REQUIRE(long_lived.ok());
  long_lived.value("BEGIN");
  long_lived.value("SELECT 1");

  CHECK(wait_until([&] { return committed.load() >= 50; }, 30s));
  Pgmux new_mux(postgres, options, *old_mux);
  CHECK(new_mux.log().find("takeover: received") != std::string::npos);
  CHECK(long_lived.value("SELECT 2") == "2");
  CHECK(exec_bounded(long_lived.get(), "COMMIT", 10s).ok());

  int status = old_mux->wait_exit(25s);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(old_mux->log().find("handed the listeners over") != std::string::npos);

  int at_exit = committed.load();
  CHECK(wait_until([&] { return committed.load() >= at_exit + 50; }, 30s));
  stop = true;
  for (auto& t : clients) t.join();
  INFO(old_mux->log_tail());
  INFO(new_mux.log_tail());
  INFO(failures.summary());
  CHECK(failures.list().empty());
  CHECK(probes.load() > 100);
  // The new process serves on its own: a second takeover finds it and a fresh client gets in.
  Connection after(new_mux.conninfo());
  REQUIRE(after.ok());
  CHECK(after.value("SELECT 3") == "3");
}

TEST_CASE("two takeovers started back to back lose nothing", "[restart][back_to_back]") {
  // Two successors started at once, neither waiting for anything: one gets the sockets from the first
  // process; the other's request waits behind it and is dropped when the first process lets go of the name.
  // Then the port is still in use but nobody offers sockets until the winner's predecessor has let go of the
  // name: the other must wait for the winner's offer (rather than fail with "Address already in use") and
  // take the sockets over from it.
  TestPostgres& postgres = TestPostgres::shared();
  const PgmuxOptions options{.extra_yaml = "shutdown_timeout: 20s\n"};
  Pgmux first(postgres, options);
  Failures failures;
  std::atomic<bool> stop{false};
  std::atomic<int> served{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 3; ++i)
    clients.emplace_back(
        [&, i] { serverless_client(i, first.conninfo(), {"SELECT 1"}, stop, served, failures); });
  // To have both requests certainly wait at once, the first process is held (SIGSTOP) until both successors
  // have connected and wait for the sockets.
  REQUIRE(wait_until([&] { return first.log().find("takeover: offering") != std::string::npos; }, 10s));
  std::optional<PausedProcess> first_held(std::in_place, first.process());
  Pgmux a(postgres, options, first, /*wait=*/false);
  Pgmux b(postgres, options, first, /*wait=*/false);
  auto logs = [&] {
    return "first " + first.log_tail(10) + "\na " + a.log_tail(15) + "\nb " + b.log_tail(15);
  };
  const bool both_ask = wait_until(
      [&] {
        return a.process().blocked_in_syscall(SYS_recvmsg) && b.process().blocked_in_syscall(SYS_recvmsg);
      },
      10s);
  first_held.reset();
  {
    INFO(logs());
    REQUIRE(both_ask);
  }
  const bool both_up = a.wait_listening(30s) && b.wait_listening(30s);
  INFO(logs());
  REQUIRE(both_up);
  auto took_from = [](Pgmux& successor, const Pgmux& from) {
    return successor.log().find("takeover: received 2 listening socket(s) from pid " +
                                std::to_string(from.pid())) != std::string::npos;
  };
  // Whichever asked first took over from the first process, the other from it.
  const bool a_won = took_from(a, first);
  Pgmux& winner = a_won ? a : b;
  Pgmux& last = a_won ? b : a;
  CHECK(took_from(winner, first));
  CHECK(took_from(last, winner));
  CHECK(last.log().find("nobody offers sockets") != std::string::npos);  // it did have to wait
  for (Pgmux* old : {&first, &winner}) {
    int status = old->wait_exit(25s);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  const int at_exit = served.load();
  CHECK(wait_until([&] { return served.load() >= at_exit + 50; }, 30s));
  stop = true;
  for (auto& t : clients) t.join();
  INFO(failures.summary());
  CHECK(failures.list().empty());
  Connection after(last.conninfo());
  REQUIRE(after.ok());
  CHECK(after.value("SELECT 3") == "3");
}

TEST_CASE("connections waiting in the old process's accept queues at a takeover are served by the new one",
          "[restart][handover]") {
  // A listener that closes resets the connections still in its accept queue; a takeover hands the very
  // sockets over so that none is lost. To have connections certainly waiting at the switch, both processes
  // are held (SIGSTOP) at the point of the handover where the old one has sent its sockets and waits for the
  // new one's word, and the new one has not read them yet: only the old process's listeners are on the port
  // then, and nobody accepts. Connections made now wait in their accept queues (the kernel alone completes a
  // handshake). Then the new process goes on while the old one stays stopped: it can serve them only if it
  // accepts on the very sockets they wait in. A successor with listeners of its own would leave them there,
  // for the old process to reset when it closes its listeners.
  TestPostgres& postgres = TestPostgres::shared();
  Pgmux old_mux(postgres);
  const std::string old_pid = std::to_string(old_mux.pid());
  // Its port accepts before its workers run; the offer is made once they do.
  REQUIRE(wait_until([&] { return old_mux.log().find("takeover: offering") != std::string::npos; }, 10s));
  std::optional<PausedProcess> old_held(std::in_place, old_mux.process());
  // The old process cannot answer while stopped: the new one connects and waits for the sockets in recvmsg.
  Pgmux new_mux(postgres, {}, old_mux, /*wait=*/false);
  const std::string new_pid = std::to_string(new_mux.pid());
  std::optional<PausedProcess> new_held;
  auto logs = [&] { return "old " + old_mux.log_tail(15) + "\nnew " + new_mux.log_tail(15); };
  bool waits_for_sockets = wait_until([&] { return new_mux.process().blocked_in_syscall(SYS_recvmsg); }, 10s);
  {
    INFO(logs());
    REQUIRE(waits_for_sockets);
  }
  new_held.emplace(new_mux.process());
  old_held.reset();
  bool sent =
      wait_until([&] { return old_mux.log().find("socket(s) to pid " + new_pid) != std::string::npos; }, 10s);
  {
    INFO(logs());
    REQUIRE(sent);
  }
  old_held.emplace(old_mux.process());
  const std::vector<int> listeners_before = accept_queues(old_mux.port());
  CHECK(listeners_before.size() == 2);  // the old process's, one per worker

  constexpr int kWaiting = 24;
  PendingLogins waiting;
  for (int i = 0; i < kWaiting; ++i) {
    INFO("connection " << i << ": " << waiting.error());
    REQUIRE(waiting.start(old_mux.conninfo() + " gssencmode=disable", 5s));
  }
  std::vector<int> queues = accept_queues(old_mux.port());
  INFO("accept queues: " << Catch::Detail::stringify(queues));
  CHECK(std::accumulate(queues.begin(), queues.end(), 0) == kWaiting);
  // Spread by the kernel over both (all in one has odds of 2 in 2^24): each handed-over socket must be
  // served.
  CHECK(std::count(queues.begin(), queues.end(), 0) == 0);

  // The new process takes the sockets over, confirms (the old one reads it later) and serves.
  new_held.reset();
  const int served_by_new = waiting.finish(10s);
  {
    INFO(logs());
    INFO("logged in while the old process was stopped: " << served_by_new << " of " << kWaiting << "; "
                                                         << waiting.summary());
    CHECK(served_by_new == kWaiting);
    // Shared, not added to: the port has the same two listeners as before.
    CHECK(accept_queues(old_mux.port()).size() == 2);
  }
  if (served_by_new < kWaiting) {
    // Say what became of the others once the old process goes on: served by it before it closed its
    // listeners, or reset when it did.
    old_held.reset();
    int served = waiting.finish(10s);
    FAIL("once the old process went on, " << served - served_by_new << " more logged in; "
                                          << waiting.summary());
  }
  for (int i = 0; i < kWaiting; ++i) {
    Outcome o = exec_bounded(waiting.get(i), "SELECT " + std::to_string(i), 10s);
    CHECK(o.error == "");
    CHECK(o.value() == std::to_string(i));
  }
  CHECK(new_mux.log().find("takeover: received 2 listening socket(s) from pid " + old_pid) !=
        std::string::npos);

  // The old process reads the confirmation, drains (none of those clients is its own) and exits 0.
  old_held.reset();
  int status = old_mux.wait_exit(25s);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(old_mux.log().find("handed the listeners over to pid " + new_pid) != std::string::npos);
  for (int i = 0; i < kWaiting; ++i) CHECK(exec_bounded(waiting.get(i), "SELECT 1", 10s).value() == "1");
  Connection after(new_mux.conninfo());
  REQUIRE(after.ok());
  CHECK(after.value("SELECT 2") == "2");
}

TEST_CASE("--takeover with no pgmux on the port starts as usual", "[restart]") {
  // A successor of nobody: the harness's own start, with the flag, must simply listen.
  Pgmux first(TestPostgres::shared());
  REQUIRE(first.stop(SIGTERM) != -1);
  Pgmux successor(TestPostgres::shared(), {}, first);
  CHECK(successor.log().find("no pgmux serves these addresses") != std::string::npos);
  Connection c(successor.conninfo());
  REQUIRE(c.ok());
  CHECK(c.value("SELECT 1") == "1");
}

TEST_CASE("--takeover hands the listen.metrics socket over too", "[restart]") {
  PgmuxOptions options{.metrics = true};
  auto old_mux = std::make_unique<Pgmux>(TestPostgres::shared(), options);
  REQUIRE(http_get(old_mux->metrics_port(), "/healthz").status == 200);
  Pgmux new_mux(TestPostgres::shared(), options, *old_mux);
  CHECK(new_mux.metrics_port() == old_mux->metrics_port());
  CHECK(new_mux.log().find("takeover: received") != std::string::npos);
  int status = old_mux->wait_exit(25s);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  // The old process is gone: whoever answers on the metrics port now is the successor.
  CHECK(http_get(new_mux.metrics_port(), "/healthz").status == 200);
  CHECK(http_get(new_mux.metrics_port(), "/metrics").status == 200);
  Connection c(new_mux.conninfo());
  REQUIRE(c.ok());
  CHECK(c.value("SELECT 1") == "1");
}
