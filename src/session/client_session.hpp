// One client connection, from the startup packet to the end: login, then transactions relayed to backends.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "net/asio.hpp"
#include "pgmux/protocol/session_params.hpp"
#include "pool/pool.hpp"
#include "session/cancel_registry.hpp"
#include "session/proxy.hpp"
#include "session/relay.hpp"

namespace pgmux::session {

// The database name that reaches the admin console instead of a server.
inline constexpr std::string_view kAdminDatabase = "pgmux";

// How a client reached pgmux. The session only ever sees a stream socket: a WebSocket client's is one end of
// a socketpair whose other end carries its frames (http/websocket_tunnel), so the transport matters only for
// the log, the metrics and the cleartext-password rule.
struct ClientTransport {
  std::string peer;        // for the log; empty: the socket's own remote address
  bool websocket = false;  // counted as protocol="websocket" in the metrics
  // A PasswordMessage pipelined behind the startup packet may be checked in clear (auth_type plain allows it
  // anyway).
  bool cleartext_allowed = false;
};

class ClientSession : private RelayOwner {
 public:
  ClientSession(Proxy& proxy, net::Socket socket, ClientTransport transport = {});
  ~ClientSession();

  // The whole life of a connection. The coroutine itself ends after login: from then on the session belongs
  // to its relay's callbacks, so an idle client costs its session object and one pending wait, and no
  // coroutine frame. A short coroutine comes back at the end to clean up.
  static asio::awaitable<void> serve(Proxy& proxy, net::Socket socket, ClientTransport transport = {});

 private:
  // What the login learns that the pool may need, kept only while logging in.
  struct LoginState {
    std::string user;
    protocol::ParamSet wished;  // tracked settings from the startup packet (application_name, TimeZone, ...)
    std::optional<std::pair<auth::Key256, auth::Key256>> scram_keys;  // ClientKey, ServerKey
    std::optional<std::string> password;                              // sent in clear (auth_type plain)
    // How the attempt ended, for the metrics; unset while no startup packet came (a port probe, a cancel).
    std::optional<LoginResult> result;
  };

  asio::awaitable<bool> login_in_time();
  // Startup packet, TLS/GSS refusal, cancel requests, authentication. True when the client may send queries.
  asio::awaitable<bool> login(LoginState& login);
  asio::awaitable<bool> authenticate(LoginState& login);
  // Whether a PasswordMessage already waits behind the startup packet, sent before it was asked for.
  bool password_pipelined();
  // AuthenticationCleartextPassword, then the PasswordMessage checked against the user's secret.
  asio::awaitable<bool> check_cleartext_password(LoginState& login, const auth::UserSecret* secret);
  asio::awaitable<bool> refuse_password(LoginState& login);
  asio::awaitable<bool> send_welcome(LoginState& login);
  asio::awaitable<void> forward_cancel(std::uint32_t pid, std::uint32_t key);

  void relay_finished() override;
  void describe(ClientSnapshot& out) const override;
  // Ends the session as the relay's end calls for: errors to the client, the backend cleaned, returned or
  // closed.
  static asio::awaitable<void> wind_up(std::unique_ptr<ClientSession> self);
  // After the client left: ends whatever it left open (Sync for unsynced messages, ROLLBACK) and, in session
  // mode, runs server_reset_query, so the next client finds a clean backend. False: close the backend
  // instead.
  asio::awaitable<bool> clean_up_backend(pool::Backend& backend);

  // After a FATAL: the client's remaining input is drained for a moment, so that the error is not lost to a
  // connection reset.
  asio::awaitable<void> close_gracefully();
  // Sends an ErrorResponse (FATAL ends the session after it).
  asio::awaitable<void> send_error(std::string_view severity, std::string_view sqlstate,
                                   std::string_view message);

  // The client's address:port, for the log and SHOW CLIENTS: asked of the socket when needed rather than kept
  // as a string in every idle session.
  std::string peer() const;
  // The database logged in to, in config_; kept in cancel_target_, which needs it too.
  const config::DatabaseConfig* database() const { return cancel_target_.database; }

  // Fields ordered so that no padding is wasted: an idle client costs this object, and little else.
  Proxy& proxy_;
  net::Socket socket_;
  // ClientTransport::peer when given (a WebSocket client's socket is one end of a socketpair); null for TCP.
  std::unique_ptr<const std::string> transport_peer_;
  std::string user_;
  pool::Clock::time_point connected_at_;
  // The config this client logged in under: it keeps it (and database() points into it) even if a reload
  // swaps in another.
  std::shared_ptr<const config::Config> config_;
  pool::Pool* pool_ = nullptr;
  bool websocket_ = false;          // ClientTransport::websocket
  bool cleartext_allowed_ = false;  // ClientTransport::cleartext_allowed
  bool session_mode_ = false;
  bool admin_ = false;            // logged in to the admin console rather than a database
  CancelTarget cancel_target_;    // its database is the session's (database()), set at login
  std::uint64_t client_key_ = 0;  // our BackendKeyData, registered for cancels
  protocol::ParamSet params_;     // the client's session settings, re-applied on every backend it borrows
  std::optional<Relay> relay_;    // from login to the end
};

// Exceptions are for bugs: one session's bug is logged and ends that session only.
void log_session_failure(std::exception_ptr failure);

}  // namespace pgmux::session
