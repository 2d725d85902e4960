// A failed login says nothing about whether the user exists: wrong passwords for listed and unknown users
// get the same method, the same SCRAM parameters, byte-identical errors and the same log line.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "pgmux.hpp"
#include "pgmux/auth/md5.hpp"
#include "pgmux/auth/scram.hpp"
#include "pgmux/protocol/builders.hpp"
#include "pgmux/protocol/wire.hpp"
#include "raw_socket.hpp"

using namespace pgmux::test;
namespace protocol = pgmux::protocol;
namespace auth = pgmux::auth;

namespace {

struct FailedLogin {
  std::uint32_t method = 0;  // the authentication request: 3 cleartext, 5 md5, 10 SASL
  std::string scram_salt;    // SCRAM: the salt's base64 and the iteration count from server-first-message
  std::string scram_iterations;
  std::string error;  // the ErrorResponse as sent, with the user name replaced by USER
  bool closed = false;
  double seconds = 0;  // from the startup packet to the error
};

std::string attribute(const std::string& message, char name) {
  std::string key = std::string(1, name) + "=";
  std::size_t at = message.find(key);
  if (at == std::string::npos) return "";
  at += 2;
  return message.substr(at, message.find(',', at) - at);
}

// Logs in as `user` with a wrong password, answering whichever method pgmux asks for, as a client would.
FailedLogin fail_login(int port, const std::string& user, const std::string& password,
                       const std::string& database = "app") {
  FailedLogin out;
  RawSocket socket(port);
  REQUIRE(socket.connected());
  std::string packet;
  protocol::append_startup(packet, {{"user", user}, {"database", database}});
  auto start = std::chrono::steady_clock::now();
  REQUIRE(socket.send_all(packet));
  char type = 0;
  std::string body, raw;
  REQUIRE(socket.read_message(type, body, 10s));
  REQUIRE(type == 'R');
  out.method = protocol::read_u32(body.data());
  std::string answer;
  if (out.method == protocol::kAuthCleartext) {
    protocol::append_password(answer, password);
  } else if (out.method == protocol::kAuthMd5) {
    auth::Md5Salt salt;
    std::copy_n(body.data() + 4, 4, salt.begin());
    auth::UserSecret secret{auth::UserSecret::Kind::plain, password, {}};
    protocol::append_password(answer, auth::md5_client_response(user, secret, salt));
  } else {
    REQUIRE(out.method == protocol::kAuthSasl);
    auto scram = auth::ScramClient::with_password(password, "fixedclientnonce");
    std::string first;
    protocol::append_sasl_initial_response(first, "SCRAM-SHA-256", scram.client_first());
    REQUIRE(socket.send_all(first));
    REQUIRE(socket.read_message(type, body, 10s));
    REQUIRE(type == 'R');
    REQUIRE(protocol::read_u32(body.data()) == protocol::kAuthSaslContinue);
    std::string server_first = body.substr(4);
    out.scram_salt = attribute(server_first, 's');
    out.scram_iterations = attribute(server_first, 'i');
    auto final_message = scram.on_server_first(server_first);
    REQUIRE(final_message);
    protocol::append_sasl_response(answer, *final_message);
  }
  REQUIRE(socket.send_all(answer));
  REQUIRE(socket.read_message(type, body, 10s, &raw));
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(type == 'E');
  // The name is the only part that may differ; both are the same length or not, so the length is
  // rewritten too by building the expected form from the placeholder.
  std::string quoted = "\"" + user + "\"";
  std::size_t at = raw.find(quoted);
  REQUIRE(at != std::string::npos);
  raw.replace(at, quoted.size(), "\"USER\"");
  protocol::write_u32(raw.data() + 1, static_cast<std::uint32_t>(raw.size() - 1));
  out.error = raw;
  std::string rest;
  out.closed = socket.read_until_closed(rest, 10s);
  return out;
}

void same_path(const FailedLogin& known, const FailedLogin& unknown) {
  CHECK(known.method == unknown.method);
  CHECK(known.error == unknown.error);
  CHECK(known.closed);
  CHECK(unknown.closed);
  if (known.method == protocol::kAuthSasl) {
    CHECK(known.scram_iterations == unknown.scram_iterations);
    CHECK(known.scram_salt.size() == unknown.scram_salt.size());
  }
}

// PGMUX_TIMING=1 prints how long failed logins take, for listed and unknown users alike.
void report_timing(const std::string& auth_type, const std::string& user, Pgmux& mux) {
  if (!std::getenv("PGMUX_TIMING")) return;
  double total = 0;
  const int rounds = 20;
  for (int i = 0; i < rounds; ++i) total += fail_login(mux.port(), user, "wrong").seconds;
  std::printf("auth_type %s, user %s: failed login %.2f ms on average\n", auth_type.c_str(), user.c_str(),
              1000 * total / rounds);
}

}  // namespace

TEST_CASE("auth_type scram-sha-256: a wrong password and an unknown user fail the same way",
          "[login][failed-login]") {
  Pgmux mux(TestPostgres::shared());
  FailedLogin unknown = fail_login(mux.port(), "nobody", "wrong");
  CHECK(unknown.method == protocol::kAuthSasl);
  CHECK(unknown.error.find("password authentication failed for user \"USER\"") != std::string::npos);
  CHECK(unknown.error.find("28P01") != std::string::npos);
  for (const char* user : {"app", "plainuser"}) {
    INFO(user);
    same_path(fail_login(mux.port(), user, "wrong"), unknown);
  }
  // The unknown user's salt is stable, as a real user's is.
  CHECK(fail_login(mux.port(), "nobody", "other").scram_salt == unknown.scram_salt);
  for (const char* user : {"app", "plainuser", "nobody"}) report_timing("scram-sha-256", user, mux);
}

TEST_CASE("auth_type md5: an unknown user gets md5 like the listed md5 users, and the same error",
          "[login][failed-login]") {
  Pgmux mux(TestPostgres::shared(), {.auth_type = "md5"});
  FailedLogin unknown = fail_login(mux.port(), "nobody", "wrong");
  CHECK(unknown.method == protocol::kAuthMd5);
  for (const char* user : {"md5user", "plainuser"}) {
    INFO(user);
    same_path(fail_login(mux.port(), user, "wrong"), unknown);
  }
  for (const char* user : {"md5user", "nobody"}) report_timing("md5", user, mux);
}

TEST_CASE("auth_type md5 with mostly SCRAM users: an unknown user gets SCRAM like them",
          "[login][failed-login]") {
  Pgmux mux(TestPostgres::shared(),
            {.auth_type = "md5",
             .users_yaml = "  - name: s1\n    password: \"" + TestPostgres::shared().stored_secret("app") +
                           "\"\n  - name: s2\n    password: \"" +
                           TestPostgres::shared().stored_secret("app") + "\"\n"});
  FailedLogin unknown = fail_login(mux.port(), "nobody", "wrong");
  CHECK(unknown.method == protocol::kAuthSasl);
  same_path(fail_login(mux.port(), "app", "wrong"), unknown);
}

TEST_CASE("auth_type plain: wrong passwords for listed and unknown users fail the same way",
          "[login][failed-login]") {
  Pgmux mux(TestPostgres::shared(), {.auth_type = "plain"});
  FailedLogin unknown = fail_login(mux.port(), "nobody", "wrong");
  CHECK(unknown.method == protocol::kAuthCleartext);
  for (const char* user : {"app", "md5user", "plainuser"}) {
    INFO(user);
    same_path(fail_login(mux.port(), user, "wrong"), unknown);
  }
  // The same path shows in the log: one line each, the same words.
  std::string log = mux.log();
  CHECK(log.find("login failed: user=nobody from ") != std::string::npos);
  CHECK(log.find("login failed: user=app from ") != std::string::npos);
  for (const char* user : {"app", "plainuser", "nobody"}) report_timing("plain", user, mux);
}
