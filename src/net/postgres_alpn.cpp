// The ALPN rule of the Postgres listener (as PostgreSQL 17): "postgresql" selected, other protocols refused.
#include "net/postgres_alpn.hpp"

#include <openssl/tls1.h>

namespace pgmux::net {
namespace {

// The wire form of the server's list: one length-prefixed name.
constexpr unsigned char kWireList[] = {10, 'p', 'o', 's', 't', 'g', 'r', 'e', 's', 'q', 'l'};
static_assert(sizeof kWireList == 1 + kPostgresAlpn.size());

int rule_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

PostgresAlpn* rule_of(SSL* ssl) {
  return static_cast<PostgresAlpn*>(SSL_get_ex_data(ssl, rule_index()));
}

// Runs before ALPN is negotiated, and sees whether the extension is there at all: the select callback below
// is not called for a ClientHello without it.
int check_client_hello(SSL* ssl, int* alert, void*) {
  PostgresAlpn* rule = rule_of(ssl);
  if (!rule || !rule->direct) return SSL_CLIENT_HELLO_SUCCESS;
  const unsigned char* extension = nullptr;
  std::size_t length = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &extension,
                                &length) == 1)
    return SSL_CLIENT_HELLO_SUCCESS;
  // Direct TLS skips the SSLRequest that says "this is Postgres": ALPN is what says it instead, so that a
  // connection meant for another TLS service cannot be taken for a Postgres one (PostgreSQL 17 requires it).
  rule->refused = rule->no_alpn = true;
  *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
  return SSL_CLIENT_HELLO_ERROR;
}

int select_protocol(SSL* ssl, const unsigned char** out, unsigned char* out_length, const unsigned char* in,
                    unsigned int in_length, void*) {
  PostgresAlpn* rule = rule_of(ssl);
  if (!rule) return SSL_TLSEXT_ERR_NOACK;  // HTTPS: no protocol chosen, HTTP/1.1 as before
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, out_length, kWireList, sizeof kWireList, in, in_length) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  rule->refused = true;
  return SSL_TLSEXT_ERR_ALERT_FATAL;  // no_application_protocol (RFC 7301)
}

}  // namespace

void install_postgres_alpn(SSL_CTX* ctx) {
  SSL_CTX_set_client_hello_cb(ctx, check_client_hello, nullptr);
  SSL_CTX_set_alpn_select_cb(ctx, select_protocol, nullptr);
}

void expect_postgres_alpn(SSL* ssl, PostgresAlpn* rule) {
  SSL_set_ex_data(ssl, rule_index(), rule);
}

void forget_postgres_alpn(SSL* ssl) {
  SSL_set_ex_data(ssl, rule_index(), nullptr);
}

}  // namespace pgmux::net
