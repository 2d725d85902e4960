// Direct TLS (a ClientHello first, no SSLRequest) and the ALPN rule of the Postgres listener, end to end.
#include <catch2/catch.hpp>

#include "http_get.hpp"
#include "libpq.hpp"
#include "pgmux.hpp"
#include "prometheus_text.hpp"
#include "raw_tls_client.hpp"
#include "scram_login.hpp"
#include "test_certs.hpp"

using namespace pgmux::test;

namespace {

TestCerts& certs() {
  static TestCerts instance;
  return instance;
}

std::string tls_yaml(const std::string& mode, const std::string& more = "") {
  return "tls:\n  cert_file: " + certs().server().cert + "\n  key_file: " + certs().server().key +
         "\n  mode: " + mode + "\n" + more;
}

// pgmux's conninfo with sslmode=disable replaced by `ssl`.
std::string with_ssl(const Pgmux& mux, const std::string& ssl) {
  std::string c = mux.conninfo();
  c.replace(c.find("sslmode=disable"), 15, ssl);
  return c;
}

TlsClientOptions verified(TlsClientOptions options = {}) {
  options.ca_file = certs().ca();
  return options;
}

std::uint32_t auth_code(const WireMessage& m) {
  if (m.type != 'R' || m.body.size() < 4) return 0xffffffff;
  return static_cast<std::uint32_t>(
      static_cast<unsigned char>(m.body[0]) << 24 | static_cast<unsigned char>(m.body[1]) << 16 |
      static_cast<unsigned char>(m.body[2]) << 8 | static_cast<unsigned char>(m.body[3]));
}

std::string first_error(const std::vector<WireMessage>& messages) {
  for (const auto& m : messages)
    if (m.type == 'E') return error_field(m.body, 'C');
  return "";
}

bool any_of_type(const std::vector<WireMessage>& messages, char type) {
  for (const auto& m : messages)
    if (m.type == type) return true;
  return false;
}

std::vector<std::string> query_rows(RawTlsClient& client, const std::string& sql) {
  std::vector<WireMessage> messages;
  REQUIRE(client.send(query_message(sql)));
  REQUIRE(client.read_until_ready(messages));
  INFO("error " << first_error(messages));
  CHECK(first_error(messages) == "");
  return data_rows(messages);
}

bool logged(const Pgmux& mux, const std::string& text) {
  return wait_until([&] { return mux.log().find(text) != std::string::npos; }, std::chrono::seconds(10));
}

double logins(const Pgmux& mux, const std::string& result) {
  GetReply reply = http_get(mux.http_port(), "/metrics");
  REQUIRE(reply.status == 200);
  PromPage page = parse_prometheus_text(reply.body);
  REQUIRE(page.error == "");
  return page.value("pgmux_client_logins_total", {{"protocol", "postgres"}, {"result", result}});
}

}  // namespace

TEST_CASE("direct TLS with ALPN postgresql: the startup packet follows the handshake, SCRAM-PLUS binds to it",
          "[tls][direct-tls]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = tls_yaml("allow")});
  {
    RawTlsClient client(mux.port(), verified());
    INFO(client.failure() << mux.log_tail());
    REQUIRE(client.connected());
    CHECK(client.alpn_selected() == "postgresql");
    REQUIRE(scram_login(client, "app", "app-secret", "app", client.server_end_point()) == "");
    CHECK(query_rows(client, "SELECT current_user") == std::vector<std::string>{"app"});
  }
  {
    // Plain SCRAM-SHA-256 over direct TLS too; and a wrong password is still refused with PLUS.
    RawTlsClient plain(mux.port(), verified());
    REQUIRE(plain.connected());
    REQUIRE(scram_login(plain, "app", "app-secret", "app") == "");
    CHECK(query_rows(plain, "SELECT 40 + 2") == std::vector<std::string>{"42"});
    RawTlsClient wrong(mux.port(), verified());
    REQUIRE(wrong.connected());
    CHECK(scram_login(wrong, "app", "not-the-password", "app", wrong.server_end_point()) == "28P01");
  }
  // Negotiated TLS alongside: libpq 15 (no ALPN), a client offering ALPN postgresql after SSLRequest, and
  // plaintext (tls.mode allow).
  Connection libpq(with_ssl(mux, "sslmode=require"));
  INFO(libpq.error());
  REQUIRE(libpq.ok());
  CHECK(PQsslInUse(libpq.get()) == 1);
  CHECK(libpq.value("SELECT 6 * 7") == "42");
  RawTlsClient negotiated(mux.port(), verified({.direct = false}));
  REQUIRE(negotiated.connected());
  CHECK(negotiated.alpn_selected() == "postgresql");
  CHECK(scram_login(negotiated, "app", "app-secret", "app", negotiated.server_end_point()) == "");
  Connection plaintext(mux.conninfo());
  CHECK(plaintext.ok());
}

TEST_CASE(
    "a ClientHello without ALPN postgresql is refused in the handshake, before any AuthenticationRequest",
    "[tls][direct-tls]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = tls_yaml("allow"), .http = true});
  const double refused_before = logins(mux, "tls_refused");
  SECTION("direct TLS with no ALPN extension at all") {
    RawTlsClient client(mux.port(), verified({.alpn = {}}));
    CHECK_FALSE(client.connected());
    CHECK(client.failure().find("no application protocol") != std::string::npos);
    CHECK_FALSE(client.send(startup_message("app", "app")));
    CHECK(logged(mux, "direct TLS without ALPN"));
  }
  SECTION("direct TLS offering only http/1.1") {
    RawTlsClient client(mux.port(), verified({.alpn = {"http/1.1"}}));
    CHECK_FALSE(client.connected());
    CHECK(client.failure().find("no application protocol") != std::string::npos);
    CHECK(logged(mux, "does not include \"postgresql\""));
  }
  SECTION("negotiated TLS offering only http/1.1 (a client offering ALPN must offer postgresql)") {
    RawTlsClient client(mux.port(), verified({.direct = false, .alpn = {"http/1.1"}}));
    CHECK_FALSE(client.connected());
    CHECK(client.failure().find("no application protocol") != std::string::npos);
  }
  INFO(mux.log_tail());
  CHECK(
      wait_until([&] { return logins(mux, "tls_refused") == refused_before + 1; }, std::chrono::seconds(10)));
  // Other offers that include postgresql get it; negotiated TLS without ALPN (libpq before 17) is served.
  RawTlsClient both(mux.port(), verified({.alpn = {"http/1.1", "postgresql"}}));
  REQUIRE(both.connected());
  CHECK(both.alpn_selected() == "postgresql");
  CHECK(scram_login(both, "app", "app-secret", "app") == "");
  RawTlsClient old_libpq(mux.port(), verified({.direct = false, .alpn = {}}));
  REQUIRE(old_libpq.connected());
  CHECK(old_libpq.alpn_selected() == "");
  CHECK(scram_login(old_libpq, "app", "app-secret", "app") == "");
}

TEST_CASE(
    "a pipelined login over direct TLS: the right password gets the row, a wrong one 28P01 and no query",
    "[tls][direct-tls]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = tls_yaml("allow")});
  Connection setup(TestPostgres::shared().conninfo("app", "app-secret"));
  REQUIRE(setup.ok());
  setup.value("DROP TABLE IF EXISTS direct_tls_rows");
  setup.value("CREATE TABLE direct_tls_rows (n int)");
  // StartupMessage + PasswordMessage + Query in one write, right after the handshake, as
  // bench/coldpath_client.py's pipelined direct-TLS login sends them.
  auto flight = [](const std::string& password, int n) {
    return startup_message("app", "app") + password_message(password) +
           query_message("INSERT INTO direct_tls_rows VALUES (" + std::to_string(n) + ") RETURNING n");
  };
  {
    RawTlsClient client(mux.port(), verified());
    REQUIRE(client.connected());
    REQUIRE(client.send(flight("not-the-password", 1)));
    std::vector<WireMessage> messages;
    CHECK(client.read_until_closed(messages));
    REQUIRE_FALSE(messages.empty());
    CHECK(auth_code(messages.front()) == 3);  // AuthenticationCleartextPassword, answered before it was asked
    CHECK(first_error(messages) == "28P01");
    CHECK_FALSE(any_of_type(messages, 'C'));  // no CommandComplete: the INSERT did not run
  }
  CHECK(setup.value("SELECT count(*) FROM direct_tls_rows") == "0");
  {
    RawTlsClient client(mux.port(), verified());
    REQUIRE(client.connected());
    REQUIRE(client.send(flight("app-secret", 2)));
    std::vector<WireMessage> messages;
    REQUIRE(client.read_until_ready(messages));  // the login's ReadyForQuery
    CHECK(first_error(messages) == "");
    REQUIRE(client.read_until_ready(messages));  // the query's
    CHECK(first_error(messages) == "");
    CHECK(data_rows(messages) == std::vector<std::string>{"2"});
  }
  CHECK(setup.value("SELECT string_agg(n::text, ',') FROM direct_tls_rows") == "2");
  setup.value("DROP TABLE direct_tls_rows");
}

TEST_CASE("a ClientHello where TLS is off is closed at once, and pgmux serves everyone else",
          "[tls][direct-tls]") {
  SECTION("tls.mode disable with a certificate") {
    Pgmux mux(TestPostgres::shared(), {.extra_yaml = tls_yaml("disable")});
    RawTlsClient client(mux.port(), verified());
    CHECK_FALSE(client.connected());
    CHECK(client.failure() != "handshake timed out");
    Connection plain(mux.conninfo());
    CHECK(plain.ok());
    CHECK(logged(mux, "opened with a TLS handshake (direct TLS)"));
  }
  SECTION("no tls: section") {
    Pgmux mux(TestPostgres::shared());
    RawTlsClient client(mux.port(), verified());
    CHECK_FALSE(client.connected());
    CHECK(client.failure() != "handshake timed out");
    Connection plain(mux.conninfo());
    CHECK(plain.ok());
  }
}

TEST_CASE("direct TLS under tls.mode require and client certificates: TLS as negotiated TLS is",
          "[tls][direct-tls]") {
  Pgmux mux(
      TestPostgres::shared(),
      {.extra_yaml = tls_yaml("require", "  ca_file: " + certs().ca() + "\n  client_cert: verify-full\n")});
  const CertFiles app = certs().make_client("app");
  const CertFiles md5user = certs().make_client("md5user");
  {
    RawTlsClient client(mux.port(), verified({.cert_file = app.cert, .key_file = app.key}));
    INFO(client.failure() << mux.log_tail());
    REQUIRE(client.connected());
    CHECK(scram_login(client, "app", "app-secret", "app", client.server_end_point()) == "");
    CHECK(query_rows(client, "SELECT current_user") == std::vector<std::string>{"app"});
  }
  {
    // Right chain, wrong name: refused once the user is known, as after SSLRequest.
    RawTlsClient client(mux.port(), verified({.cert_file = md5user.cert, .key_file = md5user.key}));
    REQUIRE(client.connected());
    CHECK(scram_login(client, "app", "app-secret", "app") == "28000");
  }
  {
    RawTlsClient client(mux.port(), verified());  // no certificate: the handshake fails
    std::vector<WireMessage> messages;
    CHECK((!client.connected() || (client.read_until_closed(messages) && !any_of_type(messages, 'R'))));
  }
}

TEST_CASE(
    "HTTPS on the same certificate selects no ALPN protocol: a browser's h2 and http/1.1 offer is served",
    "[tls][direct-tls][http]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = tls_yaml("allow") + "http:\n  tls: true\n", .http = true});
  for (const std::vector<std::string>& offer :
       {std::vector<std::string>{"h2", "http/1.1"}, std::vector<std::string>{"postgresql"},
        std::vector<std::string>{}}) {
    RawTlsClient client(mux.http_port(), verified({.alpn = offer}));
    INFO(client.failure());
    CHECK(client.connected());
    CHECK(client.alpn_selected() == "");
  }
}
