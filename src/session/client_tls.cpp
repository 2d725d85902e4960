// A client's TLS: the handshake after 'S' or a ClientHello first, then tls.mode and client certificates.
#include <openssl/x509.h>

#include "log.hpp"
#include "net/postgres_alpn.hpp"
#include "net/tls_tunnel.hpp"
#include "pgmux/protocol/wire.hpp"
#include "session/client_session.hpp"

namespace pgmux::session {

using namespace protocol;

namespace {
// A TLS record begins with its content type, 22 for a handshake (RFC 8446 5.1). A startup packet begins with
// the high byte of its length, 0 for every length pgmux accepts (kMaxStartupPacket), so the two never mix.
constexpr unsigned char kTlsHandshakeRecord = 0x16;
}  // namespace

asio::awaitable<bool> ClientSession::opens_with_tls_handshake() {
  // The byte is peeked so that whichever reader comes next (the TLS handshake, or read_startup_packet) sees
  // the connection from its start. The socket is non-blocking: the peek is tried first (the client's first
  // bytes are often here by now), and only when nothing is, readability is waited for, holding no buffer.
  for (;;) {
    unsigned char first = 0;
    error_code ec;
    const std::size_t n = socket_.receive(asio::buffer(&first, 1), net::Socket::message_peek, ec);
    if (ec != asio::error::would_block) co_return !ec && n == 1 && first == kTlsHandshakeRecord;
    auto [wait_ec] = co_await socket_.async_wait(net::Socket::wait_read, use_nothrow);
    if (wait_ec) co_return false;
  }
}

asio::awaitable<bool> ClientSession::start_direct_tls(LoginState& state) {
  std::shared_ptr<const net::ServerTls> tls = proxy_.server_tls();
  if (!tls || tls->mode == config::TlsMode::disable) {
    // A ClientHello cannot be answered in clear: there is no error message the client could read.
    state.result = LoginResult::tls_refused;
    log::info("client ", logged_peer(),
              " opened with a TLS handshake (direct TLS), but TLS is off (tls.mode): closed");
    co_return false;
  }
  co_return co_await start_tls(state, std::move(tls), true);
}

asio::awaitable<bool> ClientSession::start_tls(LoginState& state, std::shared_ptr<const net::ServerTls> tls,
                                               bool direct) {
  net::SslPtr ssl(SSL_new(tls->ctx.get()));
  if (!ssl) co_return false;
  SSL_set_accept_state(ssl.get());
  net::PostgresAlpn alpn{.direct = direct};
  net::expect_postgres_alpn(ssl.get(), &alpn);
  tls_login_ = std::make_unique<TlsLogin>();
  std::string problem = co_await net::tls_handshake(socket_, ssl.get());
  net::forget_postgres_alpn(ssl.get());
  if (!problem.empty()) {
    state.result = LoginResult::tls_refused;
    if (alpn.no_alpn)
      log::info("TLS handshake with client ", logged_peer(),
                " refused: direct TLS without ALPN (it must offer \"postgresql\")");
    else if (alpn.refused)
      log::info("TLS handshake with client ", logged_peer(),
                " refused: its ALPN offer does not include \"postgresql\"");
    else
      log::info("TLS handshake with client ", logged_peer(), " failed: ", problem);
    co_return false;  // nothing to tell it: it speaks TLS, and there is no TLS to speak it over
  }
  if (tls->client_cert != config::ClientCertMode::none) {
    // The chain was checked in the handshake; verify-full also wants the CN, checked once the user is known.
    if (X509* cert = SSL_get0_peer_certificate(ssl.get())) {
      char cn[256] = {};
      int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
      if (n > 0) tls_login_->client_cert_cn.assign(cn, static_cast<std::size_t>(n));
    }
  }
  log::debug("TLS with client ", logged_peer(), ": ", SSL_get_version(ssl.get()), " ",
             SSL_get_cipher_name(ssl.get()), SSL_session_reused(ssl.get()) ? " (resumed)" : "");
  // From here the socket is one end of the tunnel, which knows no address: the client's is kept for the log.
  if (!transport_peer_) transport_peer_ = std::make_unique<const std::string>(peer());
  error_code ec;
  net::Socket plaintext = net::start_tls_tunnel(std::move(socket_), std::move(ssl), ec);
  socket_ = std::move(plaintext);
  if (ec) co_return false;
  tls_ = true;
  tls_login_->end_point = tls->end_point;
  co_return true;
}

asio::awaitable<bool> ClientSession::check_tls_rules(LoginState& state) {
  if (!tls_ && config_->tls.mode == config::TlsMode::require) {
    state.result = LoginResult::tls_refused;
    log::info("login refused: user=", state.user, " from ", logged_peer(),
              ": no TLS, and tls.mode is require");
    co_await send_error(
        "FATAL", sqlstate::kInvalidAuthorization,
        "pgmux accepts only TLS connections (tls.mode: require); connect with sslmode=require");
    co_return false;
  }
  // A WebSocket client's certificate is not asked for: the HTTP listener serves browsers and drivers too.
  if (tls_ && !websocket_ && config_->tls.client_cert == config::ClientCertMode::verify_full &&
      (!tls_login_ || tls_login_->client_cert_cn != state.user)) {
    state.result = LoginResult::tls_refused;
    log::info("login refused: user=", state.user, " from ", logged_peer(), ": client certificate CN \"",
              tls_login_ ? tls_login_->client_cert_cn : std::string(),
              "\" is not the user name (tls.client_cert: verify-full)");
    co_await send_error("FATAL", sqlstate::kInvalidAuthorization,
                        "certificate authentication failed for user \"" + state.user +
                            "\": the certificate's CN does not match the user name");
    co_return false;
  }
  co_return true;
}

}  // namespace pgmux::session
