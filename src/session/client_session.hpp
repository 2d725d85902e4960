// One client connection, from the startup packet to the end: login, then transactions relayed to backends.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "net/asio.hpp"
#include "net/tls_context.hpp"
#include "pgmux/protocol/session_params.hpp"
#include "pool/pool.hpp"
#include "session/cancel_registry.hpp"
#include "session/proxy.hpp"
#include "session/relay.hpp"

namespace pgmux::session {

// The database name that reaches the admin console instead of a server.
inline constexpr std::string_view kAdminDatabase = "pgmux";

// How a client reached pgmux. The session only ever sees a stream socket: a WebSocket client's is one end of
// a socketpair whose other end carries its frames (http/websocket_tunnel), and a TLS client's, once its
// SSLRequest is answered, one whose other end carries TLS records (net/tls_tunnel). So the transport matters
// only for the log, the metrics, tls.mode and the cleartext-password rule.
struct ClientTransport {
  std::string peer;           // for the log; empty: the socket's own remote address
  bool websocket = false;     // counted as protocol="websocket" in the metrics
  bool tls = false;           // wss://: already encrypted, before any SSLRequest
  bool loopback = false;      // from a loopback address (for a socket whose own address says nothing)
  std::string tls_end_point;  // with tls: the certificate hash SCRAM-SHA-256-PLUS binds to
};

// What a TLS login needs until the client is in: the certificate hash SCRAM-SHA-256-PLUS binds to, and the
// CN of the client's certificate (tls.client_cert verify-full).
struct TlsLogin {
  std::string end_point;
  std::string client_cert_cn;
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
    std::string database;                       // as the client asked (its user name if it named none)
    std::optional<auth::UserSecret> looked_up;  // fetched with auth_query: the pool logs in with it too
    // How the attempt ended, for the metrics; unset while no startup packet came (a port probe, a cancel).
    std::optional<LoginResult> result;
  };

  asio::awaitable<bool> login_in_time();
  // Startup packet, TLS/GSS refusal, cancel requests, authentication. True when the client may send queries.
  asio::awaitable<bool> login(LoginState& login);
  // Whether the connection's first byte (peeked, not read) begins a TLS handshake record: direct TLS.
  asio::awaitable<bool> opens_with_tls_handshake();
  // Direct TLS: the handshake as after 'S' where tls.mode allows TLS; false (closed) where it does not.
  asio::awaitable<bool> start_direct_tls(LoginState& login);
  // After 'S' (or a ClientHello first, `direct`): the TLS handshake, with the ALPN rule of the Postgres
  // listener, then socket_ becomes the plaintext end of a TLS tunnel.
  asio::awaitable<bool> start_tls(LoginState& login, std::shared_ptr<const net::ServerTls> tls,
                                  bool direct = false);
  // tls.mode require and tls.client_cert, once the user is known. False: refused (the client was told).
  asio::awaitable<bool> check_tls_rules(LoginState& login);
  asio::awaitable<bool> authenticate_scram(LoginState& login, const auth::UserSecret* secret);
  asio::awaitable<bool> authenticate(LoginState& login);
  // client_connection_rate_per_ip: false (after a FATAL 53300) when the client's address is over its rate.
  asio::awaitable<bool> admit_connection(LoginState& login);
  // max_db_client_connections / max_user_client_connections, after authentication: false after a FATAL
  // 53300, else the client is counted until it leaves.
  asio::awaitable<bool> admit_client(LoginState& login, const config::DatabaseConfig& database);
  // The user's secret from the config, else from Postgres through auth_query (database's auth_user). False
  // when the lookup failed (the client has been told why); `secret` empty: the user is unknown.
  asio::awaitable<bool> find_secret(LoginState& login, std::optional<auth::UserSecret>& secret);
  // Whether a PasswordMessage already waits behind the startup packet, sent before it was asked for.
  bool password_pipelined();
  // AuthenticationCleartextPassword, then the PasswordMessage checked against the user's secret.
  asio::awaitable<bool> check_cleartext_password(LoginState& login, const auth::UserSecret* secret);
  // The client's answer to an authentication request: a PasswordMessage (SASL responses included) of at most
  // 64 KiB. Anything else gets FATAL 08P01, as from Postgres.
  asio::awaitable<bool> read_auth_response(LoginState& login, std::string& body);
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
  // peer() for a log line: looked up only if the line is written (at the default level the login and
  // disconnect lines are, at warning they are not, and every lookup is a system call).
  struct LoggedPeer {
    const ClientSession& session;
    std::string text() const { return session.peer(); }  // a member: it may call the private peer()
    friend std::ostream& operator<<(std::ostream& out, const LoggedPeer& p) { return out << p.text(); }
  };
  LoggedPeer logged_peer() const { return {*this}; }
  // For the cleartext rule: from a loopback address. Asked of the socket only then (most logins never ask).
  bool from_loopback() const;
  // The database logged in to, in config_; kept in cancel_target_, which needs it too.
  const config::DatabaseConfig* database() const { return cancel_target_.database; }

  // Fields ordered so that no padding is wasted: an idle client costs this object, and little else.
  Proxy& proxy_;
  net::Socket socket_;
  // ClientTransport::peer when given (a WebSocket client's socket is one end of a socketpair), and a TLS
  // client's address, kept when its socket became one end of its tunnel; null for a plain TCP client.
  std::unique_ptr<const std::string> transport_peer_;
  // While logging in over TLS only: the certificate hash for SCRAM-SHA-256-PLUS and the CN of the client's
  // certificate (tls.client_cert verify-full).
  std::unique_ptr<TlsLogin> tls_login_;
  std::string user_;
  pool::Clock::time_point connected_at_;
  // The config this client logged in under: it keeps it (and database() points into it) even if a reload
  // swaps in another.
  std::shared_ptr<const config::Config> config_;
  // Counted in the client limits of this database and user_ (points into config_).
  const config::DatabaseConfig* limited_database_ = nullptr;
  pool::Pool* pool_ = nullptr;
  bool websocket_ = false;  // ClientTransport::websocket
  bool loopback_ = false;   // ClientTransport::loopback
  bool tls_ = false;        // the connection is encrypted (TLS on the Postgres port, or wss://)
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
