// The cache of recent cleartext password checks: a repeated pipelined login skips the PBKDF2, a password
// changed by a reload stops working at once, and the HTTP endpoint shares the cache (and remembers a
// keep-alive connection's credentials until they change or the config does).
#include <catch2/catch.hpp>
#include <csignal>

#include "http_client.hpp"
#include "neon_http.hpp"
#include "pgmux.hpp"
#include "raw_socket.hpp"
#include "websocket_client.hpp"

using namespace pgmux::test;
using namespace std::chrono_literals;

namespace {

// Startup, password and a query in one write, as a serverless driver sends them (from loopback, where a
// password in clear is accepted): the SQLSTATE of the first error, or the query's one value.
std::string pipelined_login(int port, const std::string& user, const std::string& password) {
  RawSocket raw(port);
  if (!raw.connected()) return "not connected";
  std::string query = "SELECT 'ran'";
  std::string query_message = "Q" + be32(static_cast<std::uint32_t>(4 + query.size() + 1)) + query + '\0';
  if (!raw.send_all(startup_message(user, "forced") + password_message(password) + query_message))
    return "send failed";
  char type;
  std::string body;
  std::string value;
  while (raw.read_message(type, body, 10s)) {
    if (type == 'E')
      return error_response_sqlstate("E" + be32(static_cast<std::uint32_t>(body.size() + 4)) + body);
    if (type == 'D' && body.size() > 6) value = body.substr(6);
    if (type == 'Z' && !value.empty()) return value;
  }
  return "no answer";
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

const char* kHit = "the password of user=cached matched a recent check";

// Rewrites the config with `options` and reloads it with SIGHUP, returning once pgmux says it did.
void reload_with(Pgmux& mux, const PgmuxOptions& options) {
  mux.rewrite_config(options);
  REQUIRE(kill(mux.pid(), SIGHUP) == 0);
  REQUIRE(
      wait_until([&] { return mux.log().find("reloaded " + mux.config_path()) != std::string::npos; }, 10s));
}

}  // namespace

TEST_CASE("a repeated cleartext login is answered from the cache; a reloaded password invalidates it",
          "[login][reload]") {
  PgmuxOptions options{.http = true, .users_yaml = "  - name: cached\n    password: first-secret\n"};
  Pgmux mux(TestPostgres::shared(), options);
  INFO(mux.log_tail());
  CHECK(pipelined_login(mux.port(), "cached", "wrong") == "28P01");
  CHECK(pipelined_login(mux.port(), "cached", "first-secret") == "ran");
  CHECK(count(mux.log(), kHit) == 0);  // the first success paid the PBKDF2
  CHECK(pipelined_login(mux.port(), "cached", "first-secret") == "ran");
  CHECK(wait_until([&] { return count(mux.log(), kHit) == 1; }, 5s));
  CHECK(pipelined_login(mux.port(), "cached", "wrong") == "28P01");  // a success cached is no skeleton key
  // POST /sql shares it.
  ok(post(mux.http_port(), neon_call(query_body("SELECT 1"), "cached", "first-secret", "forced")));
  CHECK(wait_until([&] { return count(mux.log(), kHit) == 2; }, 5s));

  options.users_yaml = "  - name: cached\n    password: second-secret\n";
  reload_with(mux, options);
  CHECK(pipelined_login(mux.port(), "cached", "first-secret") == "28P01");
  refused(post(mux.http_port(), neon_call(query_body("SELECT 1"), "cached", "first-secret", "forced")), 401,
          "28P01");
  CHECK(pipelined_login(mux.port(), "cached", "second-secret") == "ran");
  CHECK(count(mux.log(), kHit) == 2);  // the new password was checked in full
}

TEST_CASE("POST /sql checks a keep-alive connection's credentials once; other ones and a reload are checked",
          "[http-sql][reload]") {
  PgmuxOptions options{.http = true, .users_yaml = "  - name: cached\n    password: first-secret\n"};
  Pgmux mux(TestPostgres::shared(), options);
  INFO(mux.log_tail());
  HttpConnection connection(mux.http_port());
  REQUIRE(connection.connected());
  const HttpCall right = neon_call(query_body("SELECT 1"), "cached", "first-secret", "forced");
  ok(connection.send(right));
  ok(connection.send(right));
  ok(connection.send(right));
  CHECK(count(mux.log(), kHit) == 0);  // the repeats did not even ask the shared cache
  refused(connection.send(neon_call(query_body("SELECT 1"), "cached", "wrong", "forced")), 401, "28P01");
  ok(connection.send(right));
  // Another connection with the same credentials is checked (a hit in the shared cache).
  ok(post(mux.http_port(), right));
  CHECK(wait_until([&] { return count(mux.log(), kHit) == 1; }, 5s));

  options.users_yaml = "  - name: cached\n    password: second-secret\n";
  reload_with(mux, options);
  refused(connection.send(right), 401, "28P01");  // same connection, same headers: checked again, and wrong
  ok(connection.send(neon_call(query_body("SELECT 1"), "cached", "second-secret", "forced")));
}
