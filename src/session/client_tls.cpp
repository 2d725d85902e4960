// A client's TLS: the handshake after 'S', then tls.mode and client certificates once the user is known.
#include <openssl/x509.h>

#include "log.hpp"
#include "net/tls_tunnel.hpp"
#include "pgmux/protocol/wire.hpp"
#include "session/client_session.hpp"

namespace pgmux::session {

using namespace protocol;

asio::awaitable<bool> ClientSession::start_tls(LoginState& state, std::shared_ptr<const net::ServerTls> tls) {
  net::SslPtr ssl(SSL_new(tls->ctx.get()));
  if (!ssl) co_return false;
  SSL_set_accept_state(ssl.get());
  tls_login_ = std::make_unique<TlsLogin>();
  std::string problem = co_await net::tls_handshake(socket_, ssl.get());
  if (!problem.empty()) {
    state.result = LoginResult::tls_refused;
    log::info("TLS handshake with client ", peer(), " failed: ", problem);
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
  log::debug("TLS with client ", peer(), ": ", SSL_get_version(ssl.get()), " ",
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
    log::info("login refused: user=", state.user, " from ", peer(), ": no TLS, and tls.mode is require");
    co_await send_error(
        "FATAL", sqlstate::kInvalidAuthorization,
        "pgmux accepts only TLS connections (tls.mode: require); connect with sslmode=require");
    co_return false;
  }
  // A WebSocket client's certificate is not asked for: the HTTP listener serves browsers and drivers too.
  if (tls_ && !websocket_ && config_->tls.client_cert == config::ClientCertMode::verify_full &&
      (!tls_login_ || tls_login_->client_cert_cn != state.user)) {
    state.result = LoginResult::tls_refused;
    log::info("login refused: user=", state.user, " from ", peer(), ": client certificate CN \"",
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
