// The ALPN rule of the Postgres listener (as PostgreSQL 17): "postgresql" selected, other protocols refused.
#pragma once

#include <openssl/ssl.h>

#include <string_view>

namespace pgmux::net {

// The protocol name PostgreSQL 17 registered for ALPN; its clients offer it with direct and negotiated TLS.
inline constexpr std::string_view kPostgresAlpn = "postgresql";

// What one Postgres-listener handshake must see, and whether the client was refused for it. It lives in the
// handshake's caller for the handshake's duration (the callbacks find it through the SSL).
struct PostgresAlpn {
  bool direct = false;   // in: the connection opened with its ClientHello, no SSLRequest before it
  bool refused = false;  // out: the handshake was refused for ALPN
  bool no_alpn = false;  // out, with refused: the client offered no ALPN at all (direct only)
};

// Installs the context's callbacks. A handshake whose SSL was not given a rule (HTTPS on the same context:
// browsers offer "h2" and "http/1.1") negotiates no protocol, as without ALPN support.
void install_postgres_alpn(SSL_CTX* ctx);

// Applies `rule` to `ssl`'s handshake: "postgresql" is selected when offered, and a client offering only
// other protocols gets a fatal no_application_protocol alert; with rule.direct a client offering no ALPN at
// all gets the same alert (with SSLRequest first it is accepted, as every libpq before 17 is). Call
// forget_postgres_alpn once the handshake is over, before `rule` goes away.
void expect_postgres_alpn(SSL* ssl, PostgresAlpn* rule);
void forget_postgres_alpn(SSL* ssl);

}  // namespace pgmux::net
