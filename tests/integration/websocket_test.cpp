// Postgres over WebSocket at /v2: the wire protocol in binary frames, served like any TCP client.

#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <csignal>

#include "http_get.hpp"
#include "libpq.hpp"
#include "pgmux.hpp"
#include "raw_socket.hpp"
#include "scram_login.hpp"
#include "websocket_client.hpp"

using namespace pgmux::test;

namespace {

std::uint32_t auth_code(const WireMessage& m) {
  return m.type == 'R' && m.body.size() >= 4
             ? static_cast<std::uint32_t>((static_cast<unsigned char>(m.body[0]) << 24) |
                                          (static_cast<unsigned char>(m.body[1]) << 16) |
                                          (static_cast<unsigned char>(m.body[2]) << 8) |
                                          static_cast<unsigned char>(m.body[3]))
             : 0xffffffff;
}

// Runs one simple query; its messages up to ReadyForQuery.
std::vector<WireMessage> query(WebSocketClient& client, const std::string& sql) {
  std::vector<WireMessage> messages;
  REQUIRE(client.send(query_message(sql)));
  REQUIRE(client.read_until_ready(messages));
  return messages;
}

std::string first_error(const std::vector<WireMessage>& messages) {
  for (const auto& m : messages)
    if (m.type == 'E') return error_field(m.body, 'C');
  return "";
}

}  // namespace

TEST_CASE("a WebSocket client logs in with SCRAM, queries, and leaves with Terminate", "[websocket]") {
  Pgmux mux(TestPostgres::shared(), {.http = true});
  WebSocketClient client(mux.http_port());
  REQUIRE(client.connected());
  INFO(mux.log_tail());
  REQUIRE(scram_login(client, "app", "app-secret", "app") == "");

  auto messages = query(client, "SELECT 1 + 1, 'quote '' and ünïcode', NULL::int");
  CHECK(first_error(messages) == "");
  CHECK(data_rows(messages) == std::vector<std::string>{"2|quote ' and ünïcode|<null>"});
  messages = query(client, "SELECT 1/0");
  CHECK(first_error(messages) == "22012");  // an error is the server's, passed through; the session goes on
  messages = query(client, "SELECT 'still here'");
  CHECK(data_rows(messages) == std::vector<std::string>{"still here"});

  GetReply metrics = http_get(mux.http_port(), "/metrics");
  CHECK(sample(metrics.body, "pgmux_clients_connected{protocol=\"websocket\"}") == 1);
  CHECK(sample(metrics.body, "pgmux_clients_connected{protocol=\"postgres\"}") == 0);
  CHECK(mux.log().find("from websocket 127.0.0.1:") != std::string::npos);

  REQUIRE(client.send(terminate_message()));
  CHECK(client.closed_by_server());
}

TEST_CASE("a password sent with the startup message over loopback WebSocket is checked in clear",
          "[websocket]") {
  Pgmux mux(TestPostgres::shared(), {.http = true});
  INFO(mux.log_tail());
  // The same user kinds as for TCP: a SCRAM verifier (pass-through), an md5 hash, a plain password.
  for (auto [user, password] :
       {std::pair{"app", "app-secret"}, {"md5user", "md5-secret"}, {"plainuser", "plain-secret"}}) {
    INFO("user " << user);
    WebSocketClient client(mux.http_port());
    REQUIRE(client.connected());
    // One frame, as the driver's pipelineConnect "password" sends it.
    REQUIRE(client.send(startup_message(user, "app") + password_message(password)));
    std::vector<WireMessage> login;
    REQUIRE(client.read_until_ready(login));
    REQUIRE(login.size() >= 3);
    CHECK(auth_code(login[0]) == 3);  // AuthenticationCleartextPassword, answered before it was asked
    CHECK(auth_code(login[1]) == 0);  // AuthenticationOk
    CHECK(first_error(login) == "");
    CHECK(data_rows(query(client, "SELECT current_user")) == std::vector<std::string>{user});
  }
}

TEST_CASE("a wrong pipelined password is refused with 28P01 and the WebSocket closes", "[websocket]") {
  Pgmux mux(TestPostgres::shared(), {.http = true});
  WebSocketClient client(mux.http_port());
  REQUIRE(client.connected());
  REQUIRE(client.send(startup_message("app", "app") + password_message("not-the-password")));
  std::vector<WireMessage> login;
  WireMessage m;
  while (client.read_message(m)) login.push_back(m);
  CHECK(first_error(login) == "28P01");
  CHECK(client.closed_by_server());
}

TEST_CASE("a password pipelined over plain TCP from loopback is accepted: it never leaves the machine",
          "[websocket]") {
  // One rule for passwords in clear text, whatever the transport: TLS, loopback, or
  // allow_plaintext_password (a non-loopback client is covered by the rule's unit test).
  Pgmux mux(TestPostgres::shared(), {.http = true});
  RawSocket raw(mux.port());
  REQUIRE(raw.connected());
  REQUIRE(raw.send_all(startup_message("app", "app") + password_message("app-secret")));
  std::string received;
  CHECK(raw.read_until_ready(received, 1, 10s));
  CHECK(error_response_sqlstate(received).empty());
  CHECK(mux.log().find("sent its password before it was asked: checked in clear") != std::string::npos);
}

TEST_CASE("a WebSocket client that vanishes mid-transaction frees its backend for the next client",
          "[websocket]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .query_wait_timeout = "10s", .http = true});
  INFO(mux.log_tail());
  {
    WebSocketClient first(mux.http_port());
    REQUIRE(first.connected());
    REQUIRE(scram_login(first, "app", "app-secret", "app") == "");
    CHECK(first_error(query(first, "BEGIN; SELECT txid_current()")) == "");
    first.drop();  // no Terminate, no close frame
  }
  WebSocketClient second(mux.http_port());
  REQUIRE(second.connected());
  REQUIRE(scram_login(second, "app", "app-secret", "app") == "");
  // The only backend, and not inside the first client's transaction: now() would then be its start time.
  auto messages = query(second, "SELECT now() = statement_timestamp()");
  CHECK(first_error(messages) == "");
  CHECK(data_rows(messages) == std::vector<std::string>{"t"});
}

TEST_CASE("GET at the WebSocket path without an upgrade is 426; the path is configurable", "[websocket]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = "http:\n  websocket_path: /pg\n", .http = true});
  CHECK(http_get(mux.http_port(), "/pg").status == 426);
  CHECK(http_get(mux.http_port(), "/v2").status == 404);
  WebSocketClient client(mux.http_port(), "/pg?address=db.example:5432");
  REQUIRE(client.connected());
  CHECK(scram_login(client, "app", "app-secret", "app") == "");
}

TEST_CASE("large queries and results cross the WebSocket in pieces, whatever the frames", "[websocket]") {
  Pgmux mux(TestPostgres::shared(), {.http = true});
  WebSocketClient client(mux.http_port());
  REQUIRE(client.connected());
  REQUIRE(scram_login(client, "app", "app-secret", "app") == "");
  // A 1 MiB literal in one frame (more than the tunnel holds at once) and a 4 MB result in many frames.
  const std::string big(1 << 20, 'x');
  auto messages = query(client, "SELECT length('" + big + "')");
  CHECK(data_rows(messages) == std::vector<std::string>{std::to_string(big.size())});
  messages = query(client, "SELECT repeat('y', 1000) FROM generate_series(1, 4000)");
  CHECK(first_error(messages) == "");
  auto rows = data_rows(messages);
  CHECK(rows.size() == 4000);
  CHECK(rows.back() == std::string(1000, 'y'));
  // A message cut across frames: the session sees one byte stream.
  const std::string q = query_message("SELECT 'split'");
  REQUIRE(client.send(q.substr(0, 3)));
  REQUIRE(client.send(q.substr(3, 7)));
  REQUIRE(client.send(q.substr(10)));
  std::vector<WireMessage> split;
  REQUIRE(client.read_until_ready(split));
  CHECK(data_rows(split) == std::vector<std::string>{"split"});
}

TEST_CASE("SIGTERM tells an idle WebSocket client 57P01, closes it, and pgmux exits 0", "[websocket]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = "shutdown_timeout: 20s\n", .http = true});
  WebSocketClient client(mux.http_port());
  REQUIRE(client.connected());
  REQUIRE(scram_login(client, "app", "app-secret", "app") == "");
  REQUIRE(kill(mux.pid(), SIGTERM) == 0);
  WireMessage m;
  REQUIRE(client.read_message(m));
  CHECK(m.type == 'E');
  CHECK(error_field(m.body, 'C') == "57P01");
  CHECK(client.closed_by_server());
  int status = mux.wait_exit(15s);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
