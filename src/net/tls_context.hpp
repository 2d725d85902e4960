// OpenSSL contexts built from the config: pgmux's server side for clients, and a client side per database.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "pgmux/config/config.hpp"

namespace pgmux::net {

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;

// What clients see: the certificate of tls.cert_file, and what SCRAM-SHA-256-PLUS binds to. A reload builds a
// new one for new connections; a connection keeps the context it was accepted with (SSL_new holds a
// reference), so its channel binding stays that of the certificate it was shown.
struct ServerTls {
  SslCtxPtr ctx;
  // RFC 5929 tls-server-end-point: the hash of our certificate (SHA-256 when it is signed with MD5 or
  // SHA-1, else its own signature's hash), computed once here rather than per login.
  std::string end_point;
  config::TlsMode mode = config::TlsMode::disable;
  config::ClientCertMode client_cert = config::ClientCertMode::none;
};

// How pgmux connects to one database's server over TLS.
struct BackendTls {
  SslCtxPtr ctx;
  config::SslMode mode = config::SslMode::disable;
  std::string host;  // verify-full checks the certificate against it (a DNS name or an IP address)
  bool verify =
      false;  // the chain is checked against sslrootcert (verify-ca, verify-full, or require with it)
};

// Throw config::ConfigError naming the key when a file does not load (bad PEM, key not matching).
std::shared_ptr<const ServerTls> make_server_tls(const config::TlsConfig& tls);
std::shared_ptr<const BackendTls> make_backend_tls(const config::DatabaseConfig& db);

// A new connection's SSL for `backend`, with SNI and the host name/IP check set as sslmode asks.
SslPtr new_backend_ssl(const BackendTls& backend);

// The first error in OpenSSL's queue of this thread, as text (and the queue cleared), for the log.
std::string take_ssl_error();

}  // namespace pgmux::net
