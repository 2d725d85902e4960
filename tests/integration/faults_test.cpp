// Faults around pgmux: clients that vanish, a pool that runs dry, malformed bytes, a Postgres that restarts
// or kills a backend, and bad configuration files.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "bounded.hpp"
#include "libpq.hpp"
#include "pgmux.hpp"
#include "raw_socket.hpp"

using namespace pgmux::test;
using Clock = std::chrono::steady_clock;

namespace {

std::string direct_conninfo(const TestPostgres& postgres = TestPostgres::shared()) {
  return postgres.conninfo("app", "app-secret");
}

bool is_connection_level(const std::string& sqlstate) {
  // 08: connection exception; 57P01/02/03: admin shutdown, crash shutdown, cannot connect now.
  return sqlstate.starts_with("08") || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03";
}

}  // namespace

TEST_CASE("a client that vanishes mid-transaction has its backend rolled back and reused, never left dirty",
          "[faults]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 2});
  Connection direct(direct_conninfo());
  REQUIRE(direct.ok());
  direct.value("DROP TABLE IF EXISTS faults_vanish");
  direct.value("CREATE TABLE faults_vanish (who text)");
  Connection bystander(mux.conninfo());
  REQUIRE(bystander.ok());
  CHECK(bystander.value("SELECT 1") == "1");

  Connection doomed(mux.conninfo());
  REQUIRE(doomed.ok());
  doomed.value("BEGIN");
  doomed.value("INSERT INTO faults_vanish VALUES ('ghost')");
  std::string pid = doomed.value("SELECT pg_backend_pid()");
  REQUIRE(direct.value("SELECT state FROM pg_stat_activity WHERE pid = " + pid) == "idle in transaction");
  // Gone without a Terminate: the socket just closes.
  REQUIRE(shutdown(PQsocket(doomed.get()), SHUT_RDWR) == 0);

  // Rolled back rather than closed: the same server process waits, idle, for the next client.
  bool rolled_back = wait_until(
      [&] { return direct.value("SELECT state FROM pg_stat_activity WHERE pid = " + pid) == "idle"; }, 10s);
  INFO(mux.log_tail());
  CHECK(rolled_back);
  CHECK(direct.value("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND state LIKE "
                     "'idle in transaction%'") == "0");
  CHECK(direct.value("SELECT count(*) FROM faults_vanish") == "0");

  // The others carry on, old and new; the newest idle backend (the rolled-back one) serves them.
  CHECK(bystander.value("SELECT 2") == "2");
  Connection newcomer(mux.conninfo());
  REQUIRE(newcomer.ok());
  CHECK(newcomer.value("SELECT pg_backend_pid()") == pid);
  CHECK(newcomer.value("SELECT current_setting('transaction_isolation')") == "read committed");
  newcomer.value("INSERT INTO faults_vanish VALUES ('alive')");
  CHECK(direct.value("SELECT string_agg(who, ',') FROM faults_vanish") == "alive");
}

TEST_CASE("with the pool exhausted, a waiting client gets a query_wait_timeout error and the pool recovers",
          "[faults]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .query_wait_timeout = "1s"});
  Connection a(mux.conninfo()), b(mux.conninfo());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  a.value("BEGIN");
  a.value("SELECT 1");

  auto started = Clock::now();
  Outcome o = exec_bounded(b.get(), "SELECT 1", 20s);
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  INFO("B waited " << elapsed.count() << " ms and got: " << o.error);
  REQUIRE_FALSE(o.timed_out);
  REQUIRE_FALSE(o.ok());
  CHECK(o.error.find("query_wait_timeout") != std::string::npos);
  CHECK(elapsed >= 800ms);
  CHECK(elapsed <= 5s);

  // A was not disturbed; once it commits, a new client gets the backend.
  CHECK(a.value("SELECT 'a'") == "a");
  a.value("COMMIT");
  Connection c(mux.conninfo());
  REQUIRE(c.ok());
  CHECK(c.value("SELECT 3") == "3");
  CHECK(a.value("SELECT 4") == "4");
}

TEST_CASE(
    "malformed startup bytes get a 08P01 ErrorResponse and a closed socket; other clients are unaffected",
    "[faults]") {
  Pgmux mux(TestPostgres::shared());
  Connection steady(mux.conninfo());
  REQUIRE(steady.ok());
  CHECK(steady.value("SELECT 1") == "1");

  std::map<std::string, std::string> cases = {
      {"a startup packet claiming 0x7fffffff bytes", be32(0x7fffffff) + be32(196608)},
      {"a startup packet claiming 3 bytes", be32(3) + be32(196608)},
      {"an HTTP request", "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"},
  };
  for (const auto& [name, bytes] : cases) {
    SECTION(name) {
      RawSocket raw(mux.port());
      REQUIRE(raw.connected());
      REQUIRE(raw.send_all(bytes));
      std::string received;
      bool closed = raw.read_until_closed(received, 5s);
      INFO("received " << received.size() << " bytes: " << received);
      CHECK(closed);
      CHECK(received.find("08P01") != std::string::npos);
      CHECK(error_response_sqlstate(received) == "08P01");
      CHECK(steady.value("SELECT 2") == "2");
    }
  }
  SECTION(
      "a TLS ClientHello without SSLRequest where TLS is off: closed, as a TLS client reads no plaintext") {
    // Direct TLS (PostgreSQL 17) on a pgmux without a certificate; direct_tls_test.cpp has the TLS side.
    RawSocket raw(mux.port());
    REQUIRE(raw.connected());
    REQUIRE(raw.send_all(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) +
                         std::string(64, '\x5a')));
    std::string received;
    CHECK(raw.read_until_closed(received, 5s));
    CHECK(received.empty());
    CHECK(steady.value("SELECT 2") == "2");
  }
  Connection fresh(mux.conninfo());
  REQUIRE(fresh.ok());
  CHECK(fresh.value("SELECT 3") == "3");
}

TEST_CASE("clients recover by themselves after Postgres restarts under them, seeing only connection errors",
          "[faults]") {
  TestPostgres postgres;
  Pgmux mux(postgres, {.pool_size = 8, .query_wait_timeout = "10s"});
  constexpr int kClients = 6;

  struct ClientState {
    std::atomic<int> successes{0};
    std::atomic<long long> last_success{0};  // steady_clock ticks
    std::vector<std::string> errors;         // connection-level ones
    std::vector<std::string> unexpected;     // anything else, including hangs
  };
  std::vector<ClientState> clients(kClients);
  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  auto stop_requested = [&] {
    std::lock_guard lock(mutex);
    return stopping;
  };
  // A short pause after an error, so a down server is not hammered; ends at once when the test stops.
  auto back_off = [&] {
    std::unique_lock lock(mutex);
    wake.wait_for(lock, 50ms, [&] { return stopping; });
  };
  auto hard_deadline = Clock::now() + 90s;

  auto client = [&](int id) {
    ClientState& me = clients[id];
    std::unique_ptr<Connection> conn;
    int n = 0;
    while (!stop_requested() && Clock::now() < hard_deadline) {
      if (!conn) {
        conn = std::make_unique<Connection>(mux.conninfo());  // connect_timeout=10
        if (!conn->ok()) {
          me.errors.push_back("connect: " + conn->error());
          conn.reset();
          back_off();
          continue;
        }
      }
      ++n;
      std::vector<std::string> statements;
      if (n % 2)
        statements = {"SELECT 1"};
      else
        statements = {"BEGIN", "SELECT " + std::to_string(n), "COMMIT"};
      bool failed = false;
      for (const auto& sql : statements) {
        Outcome o = exec_bounded(conn->get(), sql, 15s);
        if (o.ok()) continue;
        failed = true;
        bool connection_lost = PQstatus(conn->get()) == CONNECTION_BAD;
        std::string what = sql + ": [" + o.sqlstate + "] " + o.error;
        if (o.timed_out || !(is_connection_level(o.sqlstate) || (o.sqlstate.empty() && connection_lost)))
          me.unexpected.push_back(what + (connection_lost ? " (connection lost)" : " (connection open)"));
        else
          me.errors.push_back(what);
        break;
      }
      if (failed) {
        conn.reset();  // reconnect through pgmux
        back_off();
        continue;
      }
      ++me.successes;
      me.last_success = Clock::now().time_since_epoch().count();
    }
  };

  std::vector<std::thread> threads;
  for (int id = 0; id < kClients; ++id) threads.emplace_back(client, id);
  auto stop_all = [&] {
    {
      std::lock_guard lock(mutex);
      stopping = true;
    }
    wake.notify_all();
    for (auto& t : threads)
      if (t.joinable()) t.join();
  };

  auto report = [&] {
    std::string text;
    for (int i = 0; i < kClients; ++i) {
      text += "client " + std::to_string(i) + ": " + std::to_string(clients[i].successes) + " ok, " +
              std::to_string(clients[i].errors.size()) + " connection errors";
      if (!clients[i].errors.empty())
        text += " (first: " + clients[i].errors.front() + "; last: " + clients[i].errors.back() + ")";
      for (const auto& u : clients[i].unexpected) text += "\n  UNEXPECTED: " + u;
      text += "\n";
    }
    return text + mux.log_tail();
  };

  bool warmed_up = wait_until(
      [&] {
        for (auto& c : clients)
          if (c.successes < 20) return false;
        return true;
      },
      20s);
  if (!warmed_up) {
    stop_all();
    INFO(report());
    REQUIRE(warmed_up);
  }

  postgres.restart();
  long long restarted = Clock::now().time_since_epoch().count();
  bool recovered = wait_until(
      [&] {
        for (auto& c : clients)
          if (c.last_success <= restarted) return false;
        return true;
      },
      20s);
  // A little traffic after recovery, so that whatever follows a restart has been exercised.
  std::vector<int> at_recovery;
  for (auto& c : clients) at_recovery.push_back(c.successes);
  wait_until(
      [&] {
        for (int i = 0; i < kClients; ++i)
          if (clients[i].successes < at_recovery[i] + 10) return false;
        return true;
      },
      10s);
  stop_all();

  std::size_t errors = 0;
  for (auto& c : clients) errors += c.errors.size();
  INFO(report());
  // pgmux itself must have lived through it.
  std::string state = mux.state();
  INFO(state);
  CHECK(state == "pgmux is running");
  CHECK(recovered);
  for (auto& c : clients) CHECK(c.unexpected.empty());
  CHECK(errors > 0);  // the restart was felt
}

TEST_CASE("a backend terminated mid-transaction gives its client 57P01 or 08006 and new clients work",
          "[faults]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 2});
  Connection direct(direct_conninfo());
  REQUIRE(direct.ok());
  Connection victim(mux.conninfo());
  REQUIRE(victim.ok());
  victim.value("BEGIN");
  std::string pid = victim.value("SELECT pg_backend_pid()");
  const std::string marker = "SELECT pg_sleep(30) /* faults-terminate */";
  REQUIRE(PQsendQuery(victim.get(), marker.c_str()) == 1);
  REQUIRE(wait_until_running(direct, pid, marker));
  REQUIRE(direct.value("SELECT pg_terminate_backend(" + pid + ")") == "t");

  bool timed_out;
  Result r = next_result(victim.get(), Clock::now() + 10s, timed_out);
  REQUIRE_FALSE(timed_out);
  REQUIRE(r);
  INFO(PQresultErrorMessage(r.get()));
  CHECK(PQresultStatus(r.get()) == PGRES_FATAL_ERROR);
  std::string state = sqlstate_of(r.get());
  CHECK((state == "57P01" || state == "08006"));
  // The connection ends: libpq sees it closed within the deadline.
  CHECK(wait_until(
      [&] {
        while (Result more = next_result(victim.get(), Clock::now() + 100ms, timed_out)) {
        }
        PQconsumeInput(victim.get());
        return PQstatus(victim.get()) == CONNECTION_BAD;
      },
      10s));
  CHECK(wait_until(
      [&] { return direct.value("SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid) == "0"; }, 10s));

  Connection next(mux.conninfo());
  REQUIRE(next.ok());
  CHECK(next.value("SELECT 1") == "1");
  next.value("BEGIN");
  CHECK(next.value("SELECT pg_backend_pid()") != pid);
  next.value("COMMIT");
}

TEST_CASE("pgmux --check-config exits 0 for a good file and non-zero naming the key for a bad one",
          "[faults]") {
  TempDir dir("pgmux-test-check-");
  auto check = [&](const std::string& name, const std::string& yaml, std::string& output) {
    auto path = dir.path() / name;
    std::ofstream(path) << yaml;
    return run_shell(std::string(PGMUX_BINARY) + " --check-config '" + path.string() + "'", &output);
  };
  const std::string good =
      "listen:\n  postgres: \"127.0.0.1:6432\"\n"
      "pool:\n  mode: transaction\n  default_pool_size: 5\n  query_wait_timeout: 30s\n"
      "databases:\n  app:\n    host: 127.0.0.1\n    port: 5432\n"
      "users:\n  - name: app\n    password: secret\n";
  {
    std::string out;
    int status = check("good.yaml", good, out);
    INFO(out);
    CHECK(status == 0);
    CHECK(out.find("OK") != std::string::npos);
  }

  struct Bad {
    std::string name, yaml, key;
  };
  std::vector<Bad> bad = {
      {"duration", "pool:\n  query_wait_timeout: soon\ndatabases:\n  app: {}\n", "pool.query_wait_timeout"},
      {"unknown key", "pool:\n  mdoe: session\ndatabases:\n  app: {}\n", "mdoe"},
      {"pool mode", "pool:\n  mode: statement\ndatabases:\n  app: {}\n", "pool.mode"},
      {"port range", "databases:\n  app:\n    port: 70000\n", "port"},
      {"pool size", "pool:\n  default_pool_size: 0\ndatabases:\n  app: {}\n", "default_pool_size"},
      {"no databases", "pool:\n  mode: session\n", "databases"},
  };
  for (const auto& b : bad) {
    std::string output;
    int status = check(b.name + ".yaml", b.yaml, output);
    INFO(b.name << ": exit " << status << ": " << output);
    CHECK(status != 0);
    CHECK(output.find(b.key) != std::string::npos);
  }
}

TEST_CASE("a client that vanishes mid-query has its query cancelled, not left running", "[faults]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 2});
  Connection direct(direct_conninfo());
  REQUIRE(direct.ok());
  Connection doomed(mux.conninfo());
  REQUIRE(doomed.ok());
  std::string pid = doomed.value("SELECT pg_backend_pid()");
  REQUIRE(PQsendQuery(doomed.get(), "SELECT pg_sleep(60)") == 1);
  REQUIRE(wait_until(
      [&] {
        return direct.value("SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid +
                            " AND query = 'SELECT pg_sleep(60)' AND state = 'active'") == "1";
      },
      10s));
  REQUIRE(shutdown(PQsocket(doomed.get()), SHUT_RDWR) == 0);
  // Cancelled within seconds, not after a minute.
  CHECK(wait_until(
      [&] {
        return direct.value("SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid +
                            " AND state = 'active'") == "0";
      },
      10s));
  Connection next(mux.conninfo());
  REQUIRE(next.ok());
  CHECK(next.value("SELECT 1") == "1");
}
