// TLS end to end: clients, client certificates, SCRAM-PLUS, Postgres with ssl, HTTPS/wss, reloads.
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>

#include "libpq.hpp"
#include "pgmux.hpp"
#include "raw_socket.hpp"
#include "test_certs.hpp"
#include "websocket_client.hpp"

using namespace pgmux::test;

namespace {

TestCerts& certs() {
  static TestCerts instance;
  return instance;
}

std::string tls_yaml(const std::string& mode, const CertFiles& server = certs().server(),
                     const std::string& more = "") {
  return "tls:\n  cert_file: " + server.cert + "\n  key_file: " + server.key + "\n  mode: " + mode + "\n" +
         more;
}

// pgmux's conninfo with sslmode=disable replaced by `ssl` (e.g. "sslmode=require").
std::string with_ssl(const Pgmux& mux, const std::string& ssl, const std::string& user = "app",
                     const std::string& password = "app-secret") {
  std::string c = mux.conninfo(user, password);
  c.replace(c.find("sslmode=disable"), 15, ssl);
  return c;
}

// The SHA-256 digest of a certificate, as raw bytes: from a PEM file or from what libpq was shown.
std::string digest(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509_digest(cert, EVP_sha256(), md, &n);
  return std::string(reinterpret_cast<char*>(md), n);
}
std::string file_digest(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  REQUIRE(f);
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  REQUIRE(cert);
  std::string d = digest(cert);
  X509_free(cert);
  return d;
}
std::string peer_digest(const Connection& c) {
  SSL* ssl = static_cast<SSL*>(PQsslStruct(c.get(), "OpenSSL"));
  REQUIRE(ssl);
  X509* cert = SSL_get1_peer_certificate(ssl);
  REQUIRE(cert);
  std::string d = digest(cert);
  X509_free(cert);
  return d;
}

std::string ssl_request() {
  return be32(8) + be32(80877103);
}

}  // namespace

TEST_CASE("libpq with sslmode=require logs in over TLS, and verify-full checks pgmux's certificate",
          "[tls]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = tls_yaml("allow")});
  {
    Connection c(with_ssl(mux, "sslmode=require"));
    REQUIRE(c.ok());
    CHECK(PQsslInUse(c.get()) == 1);
    CHECK(std::string(PQsslAttribute(c.get(), "protocol")) == "TLSv1.3");
    CHECK(c.value("SELECT 40 + 2") == "42");
  }
  for (const std::string host : {"localhost", "127.0.0.1"}) {
    std::string conninfo = with_ssl(mux, "sslmode=verify-full sslrootcert=" + certs().ca());
    conninfo.replace(conninfo.find("127.0.0.1"), 9, host);
    Connection c(conninfo);
    INFO(c.error() << mux.log_tail());
    REQUIRE(c.ok());
    CHECK(PQsslInUse(c.get()) == 1);
    CHECK(c.value("SELECT current_user") == "app");
  }
  // A CA that did not sign pgmux's certificate: libpq refuses the server.
  TestCerts other;
  Connection refused(with_ssl(mux, "sslmode=verify-ca sslrootcert=" + other.ca()));
  CHECK_FALSE(refused.ok());
  CHECK(refused.error().find("certificate verify failed") != std::string::npos);
  // TLS 1.2 still works; below it nothing does.
  Connection tls12(with_ssl(mux, "sslmode=require ssl_max_protocol_version=TLSv1.2"));
  REQUIRE(tls12.ok());
  CHECK(std::string(PQsslAttribute(tls12.get(), "protocol")) == "TLSv1.2");
  Connection tls11(with_ssl(mux,
                            "sslmode=require ssl_min_protocol_version=TLSv1.1 "
                            "ssl_max_protocol_version=TLSv1.1"));
  CHECK_FALSE(tls11.ok());
}

TEST_CASE("tls.mode require refuses a plaintext login with 28000; allow serves both; disable answers N",
          "[tls]") {
  SECTION("require") {
    Pgmux mux(TestPostgres::shared(), {.extra_yaml = tls_yaml("require")});
    RawSocket raw(mux.port());
    REQUIRE(raw.send_all(startup_message("app", "app")));
    std::string received;
    CHECK(raw.read_until_closed(received, 10s));
    CHECK(error_response_sqlstate(received) == "28000");
    CHECK(received.find("tls.mode: require") != std::string::npos);
    Connection tls(with_ssl(mux, "sslmode=require"));
    CHECK(tls.ok());
  }
  SECTION("allow") {
    Pgmux mux(TestPostgres::shared(), {.extra_yaml = tls_yaml("allow")});
    Connection plain(mux.conninfo());
    REQUIRE(plain.ok());
    CHECK(PQsslInUse(plain.get()) == 0);
    Connection tls(with_ssl(mux, "sslmode=require"));
    REQUIRE(tls.ok());
    CHECK(PQsslInUse(tls.get()) == 1);
    // prefer takes TLS when it is offered.
    Connection prefer(with_ssl(mux, "sslmode=prefer"));
    REQUIRE(prefer.ok());
    CHECK(PQsslInUse(prefer.get()) == 1);
  }
  SECTION("disable") {
    Pgmux mux(TestPostgres::shared(), {.extra_yaml = tls_yaml("disable")});
    RawSocket raw(mux.port());
    // An SSLRequest, then a startup packet without a user: 'N', then the startup packet's own error.
    REQUIRE(raw.send_all(ssl_request() + be32(9) + be32(196608) + std::string(1, '\0')));
    std::string received;
    CHECK(raw.read_until_closed(received, 10s));
    REQUIRE(!received.empty());
    CHECK(received[0] == 'N');
    CHECK(error_response_sqlstate(received.substr(1)) == "28000");
    Connection tls(with_ssl(mux, "sslmode=require"));
    CHECK_FALSE(tls.ok());
  }
}

TEST_CASE("bytes sent after the SSLRequest, before the handshake, are refused instead of buffered", "[tls]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = tls_yaml("allow")});
  RawSocket raw(mux.port());
  REQUIRE(raw.send_all(ssl_request() + startup_message("app", "app")));
  std::string received;
  CHECK(raw.read_until_closed(received, 10s));
  REQUIRE(!received.empty());
  CHECK(received[0] != 'S');
  CHECK(error_response_sqlstate(received) == "08P01");
  CHECK(received.find("unencrypted data after SSL request") != std::string::npos);
  // pgmux goes on serving.
  Connection c(with_ssl(mux, "sslmode=require"));
  CHECK(c.ok());
}

TEST_CASE("SCRAM-SHA-256-PLUS binds the login to pgmux's certificate over TLS", "[tls][scram]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = tls_yaml("allow")});
  Connection bound(with_ssl(mux, "sslmode=require channel_binding=require"));
  INFO(bound.error() << mux.log_tail());
  REQUIRE(bound.ok());
  CHECK(bound.value("SELECT current_user") == "app");
  // Without TLS there is nothing to bind to, and libpq refuses to log in without it.
  Connection unbound(mux.conninfo("app", "app-secret") + " channel_binding=require");
  CHECK_FALSE(unbound.ok());
  // A wrong password still fails with PLUS.
  Connection wrong(with_ssl(mux, "sslmode=require channel_binding=require", "app", "wrong"));
  CHECK_FALSE(wrong.ok());
  CHECK(wrong.error().find("password authentication failed") != std::string::npos);
}

TEST_CASE("client certificates: verify-full wants one from tls.ca_file whose CN is the user", "[tls]") {
  Pgmux mux(TestPostgres::shared(),
            {.extra_yaml = tls_yaml("require", certs().server(),
                                    "  ca_file: " + certs().ca() + "\n  client_cert: verify-full\n")});
  const CertFiles app = certs().make_client("app");
  const CertFiles md5user = certs().make_client("md5user");
  const CertFiles foreign = certs().make_foreign_client("app");
  {
    Connection c(with_ssl(mux, "sslmode=require sslcert=" + app.cert + " sslkey=" + app.key));
    INFO(c.error() << mux.log_tail());
    REQUIRE(c.ok());
    CHECK(c.value("SELECT current_user") == "app");
  }
  {
    // Right chain, wrong name.
    Connection c(with_ssl(mux, "sslmode=require sslcert=" + md5user.cert + " sslkey=" + md5user.key));
    CHECK_FALSE(c.ok());
    CHECK(c.error().find("certificate authentication failed for user \"app\"") != std::string::npos);
  }
  {
    // A certificate from a CA pgmux does not trust, and none at all: the handshake fails.
    Connection c(with_ssl(mux, "sslmode=require sslcert=" + foreign.cert + " sslkey=" + foreign.key));
    CHECK_FALSE(c.ok());
    Connection none(with_ssl(mux, "sslmode=require sslcert=/nonexistent sslkey=/nonexistent"));
    CHECK_FALSE(none.ok());
  }
  CHECK(mux.log().find("TLS handshake with client") != std::string::npos);
}

TEST_CASE("a password in clear text is accepted over TLS", "[tls]") {
  Pgmux mux(TestPostgres::shared(), {.auth_type = "plain", .extra_yaml = tls_yaml("require")});
  Connection c(with_ssl(mux, "sslmode=require", "plainuser", "plain-secret"));
  INFO(c.error() << mux.log_tail());
  REQUIRE(c.ok());
  CHECK(c.value("SELECT current_user") == "plainuser");
}

TEST_CASE("pgmux logs in to a Postgres with ssl = on and hostssl only under sslmode verify-full", "[tls]") {
  TestPostgres postgres({.ssl_cert = certs().server().cert,
                         .ssl_key = certs().server().key,
                         .hba = "hostssl all all 127.0.0.1/32 scram-sha-256"});
  Pgmux mux(postgres,
            {.databases_yaml =
                 "  secure:\n    host: 127.0.0.1\n    port: " + std::to_string(postgres.port()) +
                 "\n    dbname: app\n    sslmode: verify-full\n    sslrootcert: " + certs().ca() + "\n"});
  Connection c(mux.conninfo("app", "app-secret", "secure"));
  INFO(c.error() << mux.log_tail());
  REQUIRE(c.ok());
  CHECK(c.value("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == "t");
  CHECK(c.value("SELECT count(*) FROM generate_series(1, 100000)") == "100000");
  // Without sslmode the same server refuses pgmux (hostssl only).
  Connection plain(mux.conninfo("app", "app-secret", "app"));
  CHECK_FALSE(plain.ok());
}

TEST_CASE("sslmode require against a Postgres without TLS fails at once with 08004", "[tls]") {
  Pgmux mux(TestPostgres::shared(), {.databases_yaml = "  secure:\n    host: 127.0.0.1\n    port: " +
                                                       std::to_string(TestPostgres::shared().port()) +
                                                       "\n    dbname: app\n    sslmode: require\n"});
  const auto start = std::chrono::steady_clock::now();
  // The first client of a pool logs in to the server before its welcome, so it sees the failure.
  Connection c(mux.conninfo("app", "app-secret", "secure"));
  CHECK_FALSE(c.ok());
  CHECK(c.error().find("does not support TLS") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - start < 10s);  // query_wait_timeout is 30 s: not retried
}

TEST_CASE("POST /sql over HTTPS, and Neon's driver over wss://", "[tls][http-sql]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = tls_yaml("allow") + "http:\n  tls: true\n", .http = true});
  std::string output;
  const std::string url = "https://localhost:" + std::to_string(mux.http_port()) + "/sql";
  int status =
      run_shell("curl -sS --max-time 20 --cacert " + certs().ca() +
                    " -H 'Neon-Connection-String: postgresql://app:app-secret@127.0.0.1/app' "
                    "-H 'Content-Type: application/json' -d '{\"query\":\"SELECT 41 + 1 AS answer\"}' " +
                    url,
                &output);
  INFO(output << "\n" << mux.log_tail());
  REQUIRE(status == 0);
  CHECK(output.find("\"answer\":\"42\"") != std::string::npos);
  // Plain HTTP on that port gets no answer.
  CHECK(run_shell("curl -sS --max-time 10 http://127.0.0.1:" + std::to_string(mux.http_port()) + "/healthz",
                  &output) != 0);

  if (run_shell("command -v node") != 0) {
    WARN("SKIPPED: node is not installed, so Neon's driver over wss:// cannot run");
    return;
  }
  const std::filesystem::path dir = PGMUX_NEON_DIR;
  if (!std::filesystem::exists(dir / "node_modules" / "ws")) {
    WARN("SKIPPED: tests/neon has no node_modules (npm ci)");
    return;
  }
  const std::string command =
      "cd '" + dir.string() + "' && NODE_EXTRA_CA_CERTS=" + certs().ca() +
      " PGMUX_WS_SECURE=1 PGMUX_WS_PROXY=localhost:" + std::to_string(mux.http_port()) +
      "/v2 PGMUX_DATABASE_URL=postgresql://app:app-secret@127.0.0.1/app "
      "timeout 120 node neon_ws_test.mjs";
  status = run_shell(command, &output);
  INFO(output << "\n" << mux.log_tail());
  CHECK(status == 0);
}

TEST_CASE("a SIGHUP loads renewed certificate files for new connections; open ones carry on",
          "[tls][reload]") {
  TestCerts own;  // files of this test's own, replaced under the same names
  const CertFiles live{own.path("live.crt"), own.path("live.key")};
  std::filesystem::copy_file(own.server().cert, live.cert);
  std::filesystem::copy_file(own.server().key, live.key);
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = tls_yaml("allow", live)});
  const std::string verify = "sslmode=verify-full sslrootcert=" + own.ca();

  Connection before(with_ssl(mux, verify));
  REQUIRE(before.ok());
  CHECK(peer_digest(before) == file_digest(own.server().cert));

  const CertFiles renewed = own.make_server("renewed");
  std::filesystem::copy_file(renewed.cert, live.cert, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(renewed.key, live.key, std::filesystem::copy_options::overwrite_existing);
  REQUIRE(kill(mux.pid(), SIGHUP) == 0);
  REQUIRE(wait_until([&] { return mux.log().find("reloaded ") != std::string::npos; }, 10s));

  Connection after(with_ssl(mux, verify));
  REQUIRE(after.ok());
  CHECK(peer_digest(after) == file_digest(renewed.cert));
  CHECK(peer_digest(after) != file_digest(own.server().cert));
  // The connection from before the reload still works, with the certificate it was shown.
  CHECK(before.value("SELECT 7 * 6") == "42");
  CHECK(peer_digest(before) == file_digest(own.server().cert));

  // A key that does not match the certificate: the reload is refused and TLS goes on as it was.
  std::filesystem::copy_file(own.server().key, live.key, std::filesystem::copy_options::overwrite_existing);
  REQUIRE(kill(mux.pid(), SIGHUP) == 0);
  REQUIRE(wait_until(
      [&] { return mux.log().find("refused, the running configuration stays") != std::string::npos; }, 10s));
  Connection still(with_ssl(mux, verify));
  REQUIRE(still.ok());
  CHECK(peer_digest(still) == file_digest(renewed.cert));
}
