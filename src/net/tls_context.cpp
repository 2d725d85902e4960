// OpenSSL contexts built from the config: pgmux's server side for clients, and a client side per database.
#include "net/tls_context.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "net/postgres_alpn.hpp"

namespace pgmux::net {
namespace {

// TLS 1.2 suites with forward secrecy and AEAD only; TLS 1.3's own defaults are all of that already.
constexpr const char* kTls12Ciphers = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20";

[[noreturn]] void fail(const std::string& key, const std::string& what) {
  throw config::ConfigError(key + ": " + what + ": " + take_ssl_error());
}

SslCtxPtr new_context(const SSL_METHOD* method, const std::string& key) {
  SslCtxPtr ctx(SSL_CTX_new(method));
  if (!ctx) fail(key, "cannot create an OpenSSL context");
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  if (SSL_CTX_set_cipher_list(ctx.get(), kTls12Ciphers) != 1) fail(key, "cipher list refused");
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // An idle connection gives its 34 kB of record buffers back; the tunnels write partially and retry.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  return ctx;
}

std::string end_point_hash(X509* cert) {
  int md_nid = NID_undef;
  if (!OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, nullptr) || md_nid == NID_undef)
    return {};  // e.g. Ed25519: RFC 5929 defines no hash, so no channel binding is offered
  if (md_nid == NID_md5 || md_nid == NID_sha1) md_nid = NID_sha256;
  const EVP_MD* md = EVP_get_digestbynid(md_nid);
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (!md || X509_digest(cert, md, hash, &length) != 1) return {};
  return std::string(reinterpret_cast<const char*>(hash), length);
}

bool is_ip_address(const std::string& host) {
  unsigned char buffer[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 || inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

}  // namespace

std::string take_ssl_error() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "no OpenSSL error recorded";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

std::shared_ptr<const ServerTls> make_server_tls(const config::TlsConfig& tls) {
  if (!tls.enabled()) return nullptr;
  ERR_clear_error();
  auto out = std::make_shared<ServerTls>();
  out->ctx = new_context(TLS_server_method(), "tls");
  SSL_CTX* ctx = out->ctx.get();
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert_file.c_str()) != 1)
    fail("tls.cert_file", "cannot load " + tls.cert_file);
  if (SSL_CTX_use_PrivateKey_file(ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    fail("tls.key_file", "cannot load " + tls.key_file);
  if (SSL_CTX_check_private_key(ctx) != 1) fail("tls.key_file", "does not match tls.cert_file");
  // Resumption (issue #11: cheap reconnects): stateless tickets, on by default in OpenSSL; one ticket per
  // full handshake is enough for a client that reconnects one connection at a time. The session id context
  // lets sessions resume when client certificates are checked too.
  SSL_CTX_set_num_tickets(ctx, 1);
  static const unsigned char kSessionContext[] = "pgmux";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
  // Effective only on the Postgres listener's connections, which say so per SSL; HTTPS shares the context.
  install_postgres_alpn(ctx);
  if (tls.client_cert != config::ClientCertMode::none) {
    if (SSL_CTX_load_verify_locations(ctx, tls.ca_file.c_str(), nullptr) != 1)
      fail("tls.ca_file", "cannot load " + tls.ca_file);
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.ca_file.c_str());
    if (names) SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  out->end_point = end_point_hash(SSL_CTX_get0_certificate(ctx));
  out->mode = tls.mode;
  out->client_cert = tls.client_cert;
  return out;
}

std::shared_ptr<const BackendTls> make_backend_tls(const config::DatabaseConfig& db) {
  if (db.sslmode == config::SslMode::disable) return nullptr;
  ERR_clear_error();
  const std::string key = "databases." + db.name;
  auto out = std::make_shared<BackendTls>();
  out->ctx = new_context(TLS_client_method(), key);
  out->mode = db.sslmode;
  out->host = db.host;
  SSL_CTX* ctx = out->ctx.get();
  // As libpq: require with a root certificate given checks the chain as verify-ca does.
  out->verify = db.sslmode == config::SslMode::verify_ca || db.sslmode == config::SslMode::verify_full ||
                (db.sslmode == config::SslMode::require && !db.sslrootcert.empty());
  if (!db.sslrootcert.empty() && SSL_CTX_load_verify_locations(ctx, db.sslrootcert.c_str(), nullptr) != 1)
    fail(key + ".sslrootcert", "cannot load " + db.sslrootcert);
  SSL_CTX_set_verify(ctx, out->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  if (!db.sslcert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, db.sslcert.c_str()) != 1)
      fail(key + ".sslcert", "cannot load " + db.sslcert);
    if (SSL_CTX_use_PrivateKey_file(ctx, db.sslkey.c_str(), SSL_FILETYPE_PEM) != 1)
      fail(key + ".sslkey", "cannot load " + db.sslkey);
    if (SSL_CTX_check_private_key(ctx) != 1) fail(key + ".sslkey", "does not match sslcert");
  }
  return out;
}

SslPtr new_backend_ssl(const BackendTls& backend) {
  SslPtr ssl(SSL_new(backend.ctx.get()));
  if (!ssl) return ssl;
  const bool ip = is_ip_address(backend.host);
  // SNI for a host name, as libpq sends it (sslsni=1); never for an address (RFC 6066).
  if (!ip) SSL_set_tlsext_host_name(ssl.get(), backend.host.c_str());
  if (backend.mode == config::SslMode::verify_full) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
    if (ip)
      X509_VERIFY_PARAM_set1_ip_asc(param, backend.host.c_str());
    else
      SSL_set1_host(ssl.get(), backend.host.c_str());
  }
  return ssl;
}

}  // namespace pgmux::net
