// What operators watch: login outcomes in /metrics, and log lines a JSON shipper can read.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <csignal>
#include <sstream>

#include "http_get.hpp"
#include "libpq.hpp"
#include "pgmux.hpp"
#include "pgmux/protocol/builders.hpp"
#include "raw_socket.hpp"
#include "scram_login.hpp"
#include "websocket_client.hpp"

using namespace pgmux::test;

namespace {

std::string logins(const std::string& protocol, const std::string& result) {
  return "pgmux_client_logins_total{protocol=\"" + protocol + "\",result=\"" + result + "\"}";
}

// Waits for `series` to reach `value`: the counter moves just after the client got its answer.
bool reaches(const Pgmux& mux, const std::string& series, double value) {
  return wait_until([&] { return sample(http_get(mux.http_port(), "/metrics").body, series) == value; }, 5s);
}

}  // namespace

TEST_CASE("each login attempt moves the logins counter of its protocol and result, and no user label",
          "[metrics][login]") {
  // Without TCP_DEFER_ACCEPT, so that a connection that says nothing reaches pgmux and times out there.
  Pgmux mux(
      TestPostgres::shared(),
      {.pool_yaml = "  client_login_timeout: 1s\n", .extra_yaml = "tcp_defer_accept: false\n", .http = true});
  std::string page = http_get(mux.http_port(), "/metrics").body;
  // Every series is there from the start, at zero.
  for (const char* result : {"ok", "wrong_password", "unknown_database", "too_many_clients", "login_timeout",
                             "protocol_error", "refused_cleartext"}) {
    CHECK(sample(page, logins("postgres", result)) == 0);
    CHECK(sample(page, logins("websocket", result)) == 0);
  }

  {
    Connection ok(mux.conninfo());
    REQUIRE(ok.ok());
  }
  CHECK(reaches(mux, logins("postgres", "ok"), 1));
  CHECK_FALSE(Connection(mux.conninfo("app", "wrong")).ok());
  CHECK_FALSE(Connection(mux.conninfo("nobody-at-all", "x")).ok());  // an unknown user looks the same
  CHECK(reaches(mux, logins("postgres", "wrong_password"), 2));
  CHECK_FALSE(Connection(mux.conninfo("app", "app-secret", "nosuchdb")).ok());
  CHECK(reaches(mux, logins("postgres", "unknown_database"), 1));

  {
    RawSocket silent(mux.port());  // says nothing until client_login_timeout closes it
    REQUIRE(silent.connected());
    std::string ignored;
    CHECK(silent.read_until_closed(ignored, 5s));
  }
  CHECK(reaches(mux, logins("postgres", "login_timeout"), 1));
  {
    RawSocket garbage(mux.port());
    REQUIRE(garbage.send_all(be32(4) + "junk"));  // a startup packet shorter than its own header
    std::string reply;
    CHECK(garbage.read_until_closed(reply, 5s));
    CHECK(error_response_sqlstate(reply) == "08P01");
  }
  CHECK(reaches(mux, logins("postgres", "protocol_error"), 1));

  {
    WebSocketClient ws(mux.http_port());
    INFO("refused with " << ws.refused_status() << "\n" << mux.log_tail());
    REQUIRE(ws.connected());
    CHECK(scram_login(ws, "app", "wrong", "app") != "");
  }
  CHECK(reaches(mux, logins("websocket", "wrong_password"), 1));
  {
    WebSocketClient ws(mux.http_port());
    REQUIRE(ws.connected());
    CHECK(scram_login(ws, "app", "app-secret", "app") == "");
  }
  CHECK(reaches(mux, logins("websocket", "ok"), 1));

  page = http_get(mux.http_port(), "/metrics").body;
  CHECK(sample(page, logins("postgres", "ok")) == 1);  // the websocket logins were not counted as postgres
  CHECK(page.find("nobody-at-all") == std::string::npos);
  CHECK(page.find("nosuchdb") == std::string::npos);
}

TEST_CASE("a login past max_client_conn counts as too_many_clients", "[metrics][login]") {
  Pgmux mux(TestPostgres::shared(), {.max_client_conn = 1, .http = true});
  // The harness's probe of the port (is pgmux up?) is a client until pgmux sees it close: on a slow run
  // (under AddressSanitizer) it could still hold the one place.
  REQUIRE(reaches(mux, "pgmux_clients_connected{protocol=\"postgres\"}", 0));
  Connection first(mux.conninfo());
  REQUIRE(first.ok());
  Connection second(mux.conninfo());
  CHECK_FALSE(second.ok());
  CHECK(reaches(mux, logins("postgres", "too_many_clients"), 1));
  CHECK(reaches(mux, logins("postgres", "ok"), 1));
}

TEST_CASE("tcp_defer_accept: a connection reaches pgmux with its first bytes; one that sends none never does",
          "[metrics][login]") {
  const std::string postgres_clients = "pgmux_clients_connected{protocol=\"postgres\"}";
  auto open_silent = [](const Pgmux& mux) {
    std::vector<std::unique_ptr<RawSocket>> silent;
    for (int i = 0; i < 20; ++i) {
      silent.push_back(std::make_unique<RawSocket>(mux.port()));
      REQUIRE(silent.back()->connected());
    }
    return silent;
  };
  SECTION("on (the default): the silent ones stay in the kernel, and one that speaks is served at once") {
    Pgmux mux(TestPostgres::shared(), {.http = true});
    auto silent = open_silent(mux);
    // Queued ahead of this login: without the option pgmux would have taken them first.
    Connection client(mux.conninfo());
    REQUIRE(client.ok());
    CHECK(sample(http_get(mux.http_port(), "/metrics").body, postgres_clients) == 1);
    std::string startup;
    pgmux::protocol::append_startup(startup, {{"user", "app"}, {"database", "app"}});
    REQUIRE(silent[0]->send_all(startup));
    char type = 0;
    std::string body;
    REQUIRE(silent[0]->read_message(type, body, 5s));
    CHECK(type == 'R');  // asked for its password
    CHECK(reaches(mux, postgres_clients, 2));
  }
  SECTION("off: every connection is a client from the moment it is accepted") {
    Pgmux mux(TestPostgres::shared(), {.extra_yaml = "tcp_defer_accept: false\n", .http = true});
    auto silent = open_silent(mux);
    CHECK(reaches(mux, postgres_clients, 20));
  }
}

TEST_CASE("with log_format: json every log line is a JSON object with ts, level and msg", "[log]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = "log_format: json\n"});
  {
    Connection c(mux.conninfo());
    REQUIRE(c.ok());
    c.value("SELECT 1");
  }
  // A user name with a quote, a backslash and bytes that are not UTF-8 reaches the log as it is refused.
  CHECK_FALSE(Connection(mux.conninfo("'q\"uo\\\\te\xff'", "x")).ok());
  REQUIRE(mux.stop(SIGTERM) == 0);

  std::istringstream lines(mux.log());
  int parsed = 0;
  bool saw_login = false, saw_refusal = false;
  for (std::string line; std::getline(lines, line);) {
    INFO(line);
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(line, ec);
    REQUIRE_FALSE(ec);
    REQUIRE(v.is_object());
    const auto& o = v.as_object();
    REQUIRE(o.contains("ts"));
    REQUIRE(o.contains("level"));
    REQUIRE(o.contains("msg"));
    CHECK(o.at("ts").as_string().ends_with("Z"));
    std::string level(o.at("level").as_string());
    CHECK((level == "debug" || level == "info" || level == "warning" || level == "error"));
    std::string msg(o.at("msg").as_string());
    saw_login = saw_login || msg.starts_with("login: user=app database=app");
    saw_refusal = saw_refusal || msg.find("login failed: user=q\"uo\\te\xef\xbf\xbd") != std::string::npos;
    ++parsed;
  }
  CHECK(parsed >= 3);
  CHECK(saw_login);
  CHECK(saw_refusal);
}
