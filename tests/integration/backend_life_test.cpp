// What happens to backends over time: cleaned after a vanished client, aged out, and a client cut off for
// an oversized message while everyone else goes on.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>
#include <vector>

#include "libpq.hpp"
#include "pgmux.hpp"
#include "pgmux/protocol/builders.hpp"
#include "pgmux/protocol/wire.hpp"
#include "raw_socket.hpp"

using namespace pgmux::test;

namespace {

// A raw connection to 127.0.0.1:port with a 10 s receive timeout, so a test never hangs on it.
int raw_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

// Reads until the peer closes (or the timeout); returns everything read.
std::string read_to_end(int fd) {
  std::string all;
  char chunk[4096];
  for (;;) {
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return all;
    all.append(chunk, n);
  }
}

// Reads until a ReadyForQuery 'I' has arrived; everything read, for the caller to inspect.
std::string read_until_ready(int fd) {
  std::string all;
  char chunk[4096];
  while (all.find(std::string("Z\0\0\0\5I", 6)) == std::string::npos) {
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    REQUIRE(n > 0);
    all.append(chunk, n);
  }
  return all;
}

}  // namespace

TEST_CASE("a client that vanishes with unsynced extended-query messages leaves a clean, reusable backend",
          "[backends]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection direct(TestPostgres::shared().conninfo("app", "app-secret"));
  REQUIRE(direct.ok());
  direct.value("DROP TABLE IF EXISTS unsynced_rows");
  direct.value("CREATE TABLE unsynced_rows (n int)");

  Connection doomed(mux.conninfo());
  REQUIRE(doomed.ok());
  doomed.value("BEGIN");
  std::string pid = doomed.value("SELECT pg_backend_pid()");
  // Parse/Bind/Describe/Execute without a Sync: the backend runs it and waits for more inside the
  // transaction.
  REQUIRE(PQenterPipelineMode(doomed.get()) == 1);
  REQUIRE(PQsendQueryParams(doomed.get(), "INSERT INTO unsynced_rows VALUES (1)", 0, nullptr, nullptr,
                            nullptr, nullptr, 0) == 1);
  REQUIRE(PQsendFlushRequest(doomed.get()) == 1);
  REQUIRE(PQflush(doomed.get()) == 0);
  REQUIRE(wait_until(
      [&] {
        return direct.value("SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid +
                            " AND query LIKE 'INSERT INTO unsynced_rows%'") == "1";
      },
      10s));
  REQUIRE(shutdown(PQsocket(doomed.get()), SHUT_RDWR) == 0);

  Connection next(mux.conninfo());
  REQUIRE(next.ok());
  // The only backend, rolled back: same process, no transaction, no row.
  CHECK(next.value("SELECT pg_backend_pid()") == pid);
  CHECK(next.value("SELECT count(*) FROM unsynced_rows") == "0");
  CHECK(direct.value("SELECT state FROM pg_stat_activity WHERE pid = " + pid) == "idle");
}

TEST_CASE("an idle backend is closed after server_idle_timeout and the next client gets a new one",
          "[backends]") {
  Pgmux mux(TestPostgres::shared(), {.pool_yaml = "  server_idle_timeout: 1s\n"});
  Connection direct(TestPostgres::shared().conninfo("app", "app-secret"));
  Connection client(mux.conninfo());
  REQUIRE(direct.ok());
  REQUIRE(client.ok());
  std::string pid = client.value("SELECT pg_backend_pid()");
  CHECK(wait_until(
      [&] { return direct.value("SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid) == "0"; }, 10s));
  CHECK(client.value("SELECT pg_backend_pid()") != pid);
}

TEST_CASE("a backend the server ends while it is idle is never lent again: the next query runs on a new one",
          "[backends]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1});
  Connection direct(TestPostgres::shared().conninfo("app", "app-secret"));
  Connection client(mux.conninfo());
  REQUIRE(direct.ok());
  REQUIRE(client.ok());
  // Twice: the same client (its backend lives on its worker, which watched it while idle), then a new one.
  for (int round = 0; round < 2; ++round) {
    Connection other(mux.conninfo());
    Connection& next = round == 0 ? client : other;
    REQUIRE(next.ok());
    std::string pid = client.value("SELECT pg_backend_pid()");
    REQUIRE(direct.value("SELECT pg_terminate_backend(" + pid + ")") == "t");
    REQUIRE(wait_until(
        [&] { return direct.value("SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid) == "0"; },
        10s));
    // Postgres said FATAL and closed while the backend sat in the pool: the client never sees that.
    std::string after = next.value("SELECT pg_backend_pid()");
    CHECK(!after.empty());
    CHECK(after != pid);
    CHECK(count_of(mux.log(), "that the server closed") == static_cast<std::size_t>(round + 1));
  }
}

TEST_CASE("a backend older than server_lifetime is retired, even when it is used all the time",
          "[backends]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .pool_yaml = "  server_lifetime: 1s\n"});
  Connection client(mux.conninfo());
  REQUIRE(client.ok());
  std::string first = client.value("SELECT pg_backend_pid()");
  // Busy, never idle for long: the backend is still replaced once it is older than its lifetime.
  CHECK(wait_until([&] { return client.value("SELECT pg_backend_pid()") != first; }, 10s));
}

TEST_CASE("a message longer than max_packet_size gets 08P01 and closes that client only", "[backends]") {
  Pgmux mux(TestPostgres::shared(), {.auth_type = "trust", .pool_yaml = "  max_packet_size: 1048576\n"});
  // Database "forced" logs in to Postgres with a configured password: trust leaves pgmux nothing else to use.
  Connection bystander(mux.conninfo("app", "", "forced"));
  REQUIRE(bystander.ok());

  int fd = raw_connect(mux.port());
  std::string out;
  pgmux::protocol::append_startup(out, {{"user", "app"}, {"database", "forced"}});
  REQUIRE(send(fd, out.data(), out.size(), 0) == static_cast<ssize_t>(out.size()));
  // Read the welcome up to ReadyForQuery.
  std::string welcome = read_until_ready(fd);
  // A Query claiming 2 MiB, over the 1 MiB limit.
  std::string huge = "Q";
  huge.append(4, '\0');
  pgmux::protocol::write_u32(huge.data() + 1, 2u << 20);
  huge += "SELECT 1";
  REQUIRE(send(fd, huge.data(), huge.size(), 0) == static_cast<ssize_t>(huge.size()));
  std::string reply = read_to_end(fd);
  close(fd);
  CHECK(reply.find("08P01") != std::string::npos);
  CHECK(reply.find("FATAL") != std::string::npos);

  CHECK(bystander.value("SELECT 'still here'") == "still here");
}

TEST_CASE("GSSENCRequest and SSLRequest are both declined with 'N' and the login goes on in plaintext",
          "[backends]") {
  Pgmux mux(TestPostgres::shared(), {.auth_type = "trust"});
  int fd = raw_connect(mux.port());
  for (std::uint32_t code : {pgmux::protocol::kGssEncRequestCode, pgmux::protocol::kSslRequestCode}) {
    char request[8];
    pgmux::protocol::write_u32(request, 8);
    pgmux::protocol::write_u32(request + 4, code);
    REQUIRE(send(fd, request, 8, 0) == 8);
    char answer = 0;
    REQUIRE(recv(fd, &answer, 1, 0) == 1);
    CHECK(answer == 'N');
  }
  std::string out;
  pgmux::protocol::append_startup(out, {{"user", "app"}, {"database", "forced"}});
  REQUIRE(send(fd, out.data(), out.size(), 0) == static_cast<ssize_t>(out.size()));
  std::string welcome = read_until_ready(fd);
  CHECK(welcome.substr(0, 9) == std::string("R\0\0\0\10\0\0\0\0", 9));  // AuthenticationOk first
  close(fd);
}

TEST_CASE("NOTICE and ParameterStatus from the server reach the client", "[backends]") {
  Pgmux mux(TestPostgres::shared());
  Connection c(mux.conninfo());
  REQUIRE(c.ok());
  static std::vector<std::string> notices;
  notices.clear();
  PQsetNoticeReceiver(
      c.get(), [](void*, const PGresult* r) { notices.push_back(PQresultErrorMessage(r)); }, nullptr);
  c.value("DO $$ BEGIN RAISE NOTICE 'hello from plpgsql'; END $$");
  REQUIRE(notices.size() == 1);
  CHECK(notices[0].find("hello from plpgsql") != std::string::npos);
  // SET of a reported parameter makes the server send ParameterStatus; libpq records it.
  c.value("SET application_name = 'renamed'");
  CHECK(std::string(PQparameterStatus(c.get(), "application_name")) == "renamed");
  c.value("RESET application_name");
}

TEST_CASE("a client idle longer than client_idle_timeout is told so (57P05) and disconnected", "[backends]") {
  Pgmux mux(TestPostgres::shared(), {.pool_yaml = "  client_idle_timeout: 1s\n"});
  Connection idle(mux.conninfo()), busy(mux.conninfo());
  REQUIRE(idle.ok());
  REQUIRE(busy.ok());
  CHECK(idle.value("SELECT 1") == "1");
  // libpq hands an error that arrives between queries to the notice receiver.
  static std::string told;
  told.clear();
  PQsetNoticeReceiver(
      idle.get(), [](void*, const PGresult* r) { told += PQresultErrorMessage(r); }, nullptr);
  // The busy client keeps talking past the timeout and stays.
  auto started = std::chrono::steady_clock::now();
  int answered = 0;
  while (std::chrono::steady_clock::now() - started < 1500ms) answered += busy.value("SELECT 1") == "1";
  CHECK(answered > 0);
  pollfd p{PQsocket(idle.get()), POLLIN, 0};
  REQUIRE(poll(&p, 1, 10'000) == 1);  // the FATAL arrives without the client asking anything
  PQconsumeInput(idle.get());
  PQisBusy(idle.get());  // parses what arrived
  INFO(told);
  CHECK(told.find("client_idle_timeout") != std::string::npos);
  Result r = idle.exec("SELECT 1");
  CHECK(PQresultStatus(r.get()) == PGRES_FATAL_ERROR);
  CHECK(busy.value("SELECT 2") == "2");
}

TEST_CASE("a second pgmux on a port already in use refuses to start instead of sharing it", "[backends]") {
  Pgmux first(TestPostgres::shared());
  TempDir dir("pgmux-test-second-");
  auto config = dir.path() / "second.yaml";
  {
    std::ofstream out(config);
    out << "listen:\n  postgres: \"127.0.0.1:" << first.port() << "\"\n"
        << "databases:\n  app:\n    port: " << TestPostgres::shared().port() << "\n";
  }
  std::string output;
  int status = run_shell("timeout 10 " + std::string(PGMUX_BINARY) + " --config " + config.string(), &output);
  INFO(output);
  CHECK(status == 1);
  CHECK(output.find("cannot listen on 127.0.0.1:" + std::to_string(first.port())) != std::string::npos);
  Connection c(first.conninfo());
  CHECK(c.ok());
}

TEST_CASE("CopyData and CopyDone outside a COPY are dropped and never hold a backend", "[backends]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .auth_type = "trust"});
  int fd = raw_connect(mux.port());
  std::string out;
  pgmux::protocol::append_startup(out, {{"user", "app"}, {"database", "forced"}});
  REQUIRE(send(fd, out.data(), out.size(), 0) == static_cast<ssize_t>(out.size()));
  std::string welcome = read_until_ready(fd);
  // The tail of a COPY that has ended: a big CopyData split across writes, then CopyDone.
  std::string stray;
  { pgmux::protocol::MessageBuilder(stray, 'd').bytes(std::string(100'000, 'x')); }
  { pgmux::protocol::MessageBuilder(stray, 'c'); }
  REQUIRE(send(fd, stray.data(), 70'000, 0) == 70'000);
  REQUIRE(send(fd, stray.data() + 70'000, stray.size() - 70'000, 0) ==
          static_cast<ssize_t>(stray.size() - 70'000));
  // The only backend stays free for others, and the same client can still query.
  Connection other(mux.conninfo("app", "", "forced"));
  REQUIRE(other.ok());
  CHECK(other.value("SELECT 'free'") == "free");
  std::string query;
  pgmux::protocol::append_query(query, "SELECT 1");
  REQUIRE(send(fd, query.data(), query.size(), 0) == static_cast<ssize_t>(query.size()));
  std::string reply = read_until_ready(fd);
  CHECK(reply[0] == 'T');  // RowDescription: the query ran, nothing else came first
  close(fd);
}

TEST_CASE("a client still sending an oversized message gets its 08P01 rather than a connection reset",
          "[backends]") {
  Pgmux mux(TestPostgres::shared(), {.auth_type = "trust", .pool_yaml = "  max_packet_size: 1048576\n"});
  Connection c(mux.conninfo("app", "", "forced"));
  REQUIRE(c.ok());
  // libpq writes all 32 MiB before it reads: pgmux must let it, or the reset destroys the error it sent.
  std::string huge = "SELECT '" + std::string(32u << 20, 'x') + "'";
  Result r(PQexec(c.get(), huge.c_str()));
  std::string error = PQerrorMessage(c.get());
  INFO(error);
  CHECK(error.find("FATAL:  invalid message length from the client") != std::string::npos);
}

TEST_CASE("a client that ends its stream right behind a partial or whole message is let go at once",
          "[backends]") {
  // The bytes and the end of the stream reach pgmux together (it is held while they come): reading the bytes
  // is not the end of it, the session must still see the end that came with them (edge-triggered readiness
  // reports both as one event).
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .auth_type = "trust"});
  std::string query;
  pgmux::protocol::append_query(query, "SELECT 1");
  for (const std::string& last_bytes : {query.substr(0, 3), query.substr(0, 7), query}) {
    RawSocket raw(mux.port());
    REQUIRE(raw.log_in("app", "forced"));
    {
      PausedProcess held(mux.process());
      REQUIRE(raw.send_and_close_write(last_bytes));
    }
    std::string reply;
    CHECK(raw.read_until_closed(reply, 10s));
  }
  // None of them kept the one backend.
  Connection after(mux.conninfo("app", "", "forced"));
  CHECK(after.value("SELECT 2") == "2");
}

TEST_CASE("an unknown message type ends that client with 08P01, and its backend serves the next client",
          "[backends]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .auth_type = "trust"});
  Connection first(mux.conninfo("app", "", "forced"));
  REQUIRE(first.ok());
  std::string pid = first.value("SELECT pg_backend_pid()");

  RawSocket raw(mux.port());
  REQUIRE(raw.log_in("app", "forced"));
  std::string bogus = "?";
  bogus += be32(4);
  REQUIRE(raw.send_all(bogus));
  std::string reply;
  CHECK(raw.read_until_closed(reply, 10s));
  CHECK(error_response_sqlstate(reply) == "08P01");
  CHECK(reply.find("invalid frontend message type") != std::string::npos);
  // The one backend was never given the bytes, so it is still the same connection.
  CHECK(first.value("SELECT pg_backend_pid()") == pid);
}
