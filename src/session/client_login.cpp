// The client's way in: startup packet, TLS, cancel requests, authentication, welcome messages.
#include <algorithm>

#include "log.hpp"
#include "net/message_io.hpp"
#include "pgmux/auth/crypto.hpp"
#include "pgmux/auth/md5.hpp"
#include "pgmux/auth/scram.hpp"
#include "pgmux/protocol/builders.hpp"
#include "pgmux/protocol/session_params.hpp"
#include "pgmux/protocol/sql_keywords.hpp"
#include "pgmux/protocol/startup.hpp"
#include "pgmux/protocol/wire.hpp"
#include "session/cleartext_rule.hpp"
#include "session/client_session.hpp"
#include "session/unknown_user.hpp"

namespace pgmux::session {

using namespace protocol;
using config::AuthType;
using Kind = auth::UserSecret::Kind;

namespace {
constexpr std::uint32_t kMaxAuthMessage = 65535;  // Postgres's own limit for authentication tokens

// Whether a 'p' message of `length` body bytes, of which `body` has arrived, is a SASLInitialResponse: a
// mechanism's name, NUL-terminated, then more. A client sure of being offered SCRAM may send it before it is
// asked, and Postgres takes it. Only a whole name decides: a password that starts like one and has not all
// arrived stays a password, as every 'p' was before.
bool is_sasl_initial_response(std::string_view body, std::size_t length) {
  for (std::string_view name : {auth::kScramSha256, auth::kScramSha256Plus})
    if (length > name.size() + 1 && body.size() > name.size() && body.starts_with(name) &&
        body[name.size()] == '\0')
      return true;
  return false;
}
}  // namespace

asio::awaitable<bool> ClientSession::login(LoginState& state) {
  StartupPacket startup;
  std::string packet, error;
  // Direct TLS (PostgreSQL 17, sslnegotiation=direct): a ClientHello where the first packet would be. Only a
  // plain TCP connection's first bytes are looked at: a WebSocket client is already inside HTTP (and wss://
  // inside TLS). With TLS on, the startup packet follows as after an SSLRequest; there was no plaintext
  // before the handshake, so nothing for the CVE-2021-23214 check below to find.
  if (!tls_ && !websocket_ && co_await opens_with_tls_handshake() && !co_await start_direct_tls(state))
    co_return false;
  for (;;) {
    if (auto ec = co_await net::read_startup_packet(socket_, packet, kMaxStartupPacket)) {
      if (ec == boost::system::errc::protocol_error) {
        state.result = LoginResult::protocol_error;
        co_await send_error("FATAL", sqlstate::kProtocolViolation, "invalid length of startup packet");
      }
      co_return false;
    }
    auto parsed = parse_startup_packet(packet, error);
    if (!parsed) {
      state.result = LoginResult::protocol_error;
      co_await send_error("FATAL", sqlstate::kProtocolViolation, error);
      co_return false;
    }
    startup = std::move(*parsed);
    std::shared_ptr<const net::ServerTls> tls;
    if (startup.kind == StartupPacket::Kind::ssl_request && !tls_ && !websocket_) tls = proxy_.server_tls();
    if (tls && tls->mode != config::TlsMode::disable) {
      // Bytes already here were sent before the handshake, in clear, yet would be read as if they came
      // over TLS: refused, as Postgres does since CVE-2021-23214.
      error_code aec;
      if (socket_.available(aec) > 0 || aec) {
        state.result = LoginResult::protocol_error;
        log::info("client ", logged_peer(), " sent unencrypted data after its SSLRequest: refused");
        co_await send_error("FATAL", sqlstate::kProtocolViolation,
                            "received unencrypted data after SSL request");
        co_return false;
      }
      if (co_await net::write_all(socket_, "S")) co_return false;
      if (!co_await start_tls(state, std::move(tls))) co_return false;
      continue;  // the startup packet follows, over TLS
    }
    if (startup.kind == StartupPacket::Kind::ssl_request ||
        startup.kind == StartupPacket::Kind::gssenc_request) {
      // No TLS (not configured, or already on) and no GSS encryption: 'N', and the client goes on in
      // plaintext or gives up. Whatever it sent along is its next packet, in clear as it meant it.
      if (co_await net::write_all(socket_, "N")) co_return false;
      continue;
    }
    if (startup.kind == StartupPacket::Kind::cancel_request) {
      co_await forward_cancel(startup.cancel_pid, startup.cancel_key);
      co_return false;
    }
    break;
  }
  if (!co_await admit_connection(state)) co_return false;

  // Protocol 3.x with x > 0, or _pq_ options: answer with what we speak, as Postgres does.
  std::vector<std::string> unknown_options;
  for (const auto& [key, value] : startup.params)
    if (key.starts_with("_pq_.")) unknown_options.push_back(key);
  if ((startup.version & 0xffff) != 0 || !unknown_options.empty()) {
    std::string out;
    append_negotiate_protocol_version(out, 0, unknown_options);
    if (co_await net::write_all(socket_, out)) co_return false;
  }

  const std::string* user = startup.param("user");
  if (!user || user->empty()) {
    state.result = LoginResult::protocol_error;
    co_await send_error("FATAL", sqlstate::kInvalidAuthorization,
                        "no PostgreSQL user name specified in startup packet");
    co_return false;
  }
  state.user = *user;
  const std::string* database = startup.param("database");
  std::string database_name = database && !database->empty() ? *database : state.user;
  state.database = database_name;
  if (startup.param("replication")) {
    state.result = LoginResult::not_supported;
    co_await send_error("FATAL", sqlstate::kFeatureNotSupported,
                        "replication connections are not supported by pgmux");
    co_return false;
  }
  if (proxy_.client_count().load() > config_->pool.max_client_conn) {
    state.result = LoginResult::too_many_clients;
    co_await send_error("FATAL", sqlstate::kTooManyConnections,
                        "no more connections allowed (max_client_conn)");
    co_return false;
  }

  if (!co_await check_tls_rules(state)) co_return false;
  // From here a failure that names no reason is the client going away mid-login.
  state.result = LoginResult::client_disconnected;
  if (!co_await authenticate(state)) co_return false;

  if (database_name == kAdminDatabase) {
    const auto& admins = config_->admin_users;
    if (std::find(admins.begin(), admins.end(), state.user) == admins.end()) {
      state.result = LoginResult::admin_refused;
      co_await send_error("FATAL", sqlstate::kInvalidAuthorization,
                          "user \"" + state.user + "\" may not use the admin console (see admin_users)");
      co_return false;
    }
    admin_ = true;
    proxy_.admin_client_count().fetch_add(1, std::memory_order_relaxed);
    std::string out;
    append_auth_request(out, kAuthOk);
    for (auto [name, value] : {std::pair{"server_version", "15.0 (pgmux " PGMUX_VERSION ")"},
                               {"client_encoding", "UTF8"},
                               {"server_encoding", "UTF8"},
                               {"standard_conforming_strings", "on"},
                               {"DateStyle", "ISO, MDY"},
                               {"integer_datetimes", "on"},
                               {"TimeZone", "UTC"}})
      append_parameter_status(out, name, value);
    append_backend_key_data(out, 0, 0);
    append_ready_for_query(out, 'I');
    co_return !co_await net::write_all(socket_, out);
  }
  auto db = config_->databases.find(database_name);
  if (db != config_->databases.end() && !co_await admit_client(state, db->second)) co_return false;
  // No pool: a reload removed the database while this client was logging in.
  pool_ = db == config_->databases.end() ? nullptr : proxy_.pool_for(database_name, state.user);
  if (!pool_) {
    state.result = LoginResult::unknown_database;
    log::info("login refused: user=", state.user, " from ", logged_peer(), ": database \"", database_name,
              "\" is not in the config");
    co_await send_error("FATAL", sqlstate::kUnknownDatabase,
                        "database \"" + database_name + "\" does not exist");
    co_return false;
  }
  cancel_target_.database = &db->second;
  pool_->client_joined();
  user_ = state.user;
  log::info("login: user=", user_, " database=", this->database()->name, " from ", logged_peer());
  session_mode_ = config_->pool_mode_for(*this->database()) == config::PoolMode::session;
  for (const auto& [name, value] : startup.params) {
    if (name == "options") {
      for (const auto& [option, setting] : parse_startup_options(value)) state.wished.set(option, setting);
    } else {
      state.wished.set(name, value);
    }
  }
  co_return co_await send_welcome(state);
}

asio::awaitable<bool> ClientSession::refuse_password(LoginState& state) {
  const std::string& user = state.user;
  state.result = LoginResult::wrong_password;
  log::info("login failed: user=", user, " from ", logged_peer(), ": wrong password or unknown user");
  co_await send_error("FATAL", sqlstate::kInvalidPassword,
                      "password authentication failed for user \"" + user + "\"");
  co_return false;
}

bool ClientSession::password_pipelined() {
  // The startup packet was read to its exact length, so whatever is buffered now was sent along with it. A
  // WebSocket client's bytes reach this socket one whole frame at a time, and the driver sends the startup
  // message and the password in one frame (its default coalesceWrites), so nothing is missed by looking
  // once.
  error_code ec;
  if (socket_.available(ec) == 0 || ec) return false;
  char head[kHeaderSize + 20];  // the type, the length and as much of the body as a mechanism's name takes
  std::size_t n = socket_.receive(asio::buffer(head), tcp::socket::message_peek, ec);
  if (ec || n == 0 || head[0] != 'p') return false;
  if (n < kHeaderSize) return true;
  const std::uint32_t length = read_u32(head + 1);
  return length < 4 || !is_sasl_initial_response({head + kHeaderSize, n - kHeaderSize}, length - 4);
}

asio::awaitable<bool> ClientSession::read_auth_response(LoginState& state, std::string& body) {
  char type = 0;
  error_code ec = co_await net::read_message(socket_, type, body, kMaxAuthMessage);
  if (ec == boost::system::errc::protocol_error) {
    state.result = LoginResult::protocol_error;
    co_await send_error("FATAL", sqlstate::kProtocolViolation, "invalid length of authentication message");
    co_return false;
  }
  if (ec || type == 'X') co_return false;  // gone, or leaving politely: nobody to tell
  if (type != 'p') {
    state.result = LoginResult::protocol_error;
    co_await send_error("FATAL", sqlstate::kProtocolViolation,
                        std::string("expected password response, got message type ") + type);
    co_return false;
  }
  co_return true;
}

asio::awaitable<bool> ClientSession::check_cleartext_password(LoginState& state,
                                                              const auth::UserSecret* secret) {
  // AuthenticationCleartextPassword is sent even when the password is already here: the exchange stays the
  // one Postgres has for `password` authentication. Neon's serverless driver, in pipelineConnect "password"
  // mode, removes its handler for this request (so it is ignored) and also swallows the first
  // ReadyForQuery, since it already told its caller the connection was ready; it needs nothing else.
  std::string out, body;
  append_auth_request(out, kAuthCleartext);
  if (co_await net::write_all(socket_, out)) co_return false;
  if (!co_await read_auth_response(state, body)) co_return false;
  std::string_view password(body.data(), std::min(body.size(), body.find('\0')));
  // A recent success answers from the cache; anything else costs one PBKDF2 whatever the secret and whether
  // the user exists, so the time a wrong password takes tells neither.
  const bool ok = session::check_cleartext_password(proxy_.password_cache(), state.user, password, secret,
                                                    proxy_.mock_secret());
  if (!ok) co_return co_await refuse_password(state);
  state.password = std::string(password);
  co_return true;
}

asio::awaitable<bool> ClientSession::authenticate(LoginState& state) {
  const std::string& user = state.user;
  const config::Config& config = *config_;
  std::optional<auth::UserSecret> secret_copy;
  if (!co_await find_secret(state, secret_copy)) co_return false;
  const auth::UserSecret* secret = secret_copy ? &*secret_copy : nullptr;
  std::string out, body;

  const bool wants_cleartext =
      config.auth_type == AuthType::plain || (config.auth_type != AuthType::trust && password_pipelined());
  // Asked only when it matters: the client's address costs a system call.
  if (wants_cleartext &&
      !cleartext_password_allowed(tls_, from_loopback(), config.allow_plaintext_password)) {
    state.result = LoginResult::refused_cleartext;
    log::info("login refused: user=", user, " from ", logged_peer(),
              ": a password in clear text over a connection without TLS from a non-loopback address");
    co_await send_error(
        "FATAL", sqlstate::kInvalidAuthorization,
        "a password in clear text (auth_type plain, or sent before the server asks for it) is accepted only "
        "over TLS, from a loopback address, or with allow_plaintext_password: true (formerly "
        "http.allow_cleartext_password); with Neon's serverless driver, set pipelineConnect: false to log in "
        "with SCRAM");
    co_return false;
  }
  if (config.auth_type != AuthType::trust && config.auth_type != AuthType::plain && wants_cleartext) {
    // The password came without being asked for (Neon's driver, pipelineConnect "password"), so it can only
    // be checked in clear.
    log::debug("user=", user, " from ", logged_peer(),
               " sent its password before it was asked: checked in clear");
    co_return co_await check_cleartext_password(state, secret);
  }

  if (config.auth_type == AuthType::trust) {
    if (!secret) co_return co_await refuse_password(state);
  } else if (config.auth_type == AuthType::plain) {
    co_return co_await check_cleartext_password(state, secret);
  } else if (challenge_with_md5(config.auth_type, secret, proxy_.listed_secret_kinds())) {
    auth::Md5Salt salt;
    auth::random_bytes(salt);
    append_auth_request(out, kAuthMd5, {reinterpret_cast<const char*>(salt.data()), salt.size()});
    if (co_await net::write_all(socket_, out)) co_return false;
    if (!co_await read_auth_response(state, body)) co_return false;
    std::string_view response(body.data(), std::min(body.size(), body.find('\0')));
    if (!secret || !auth::md5_verify(user, *secret, salt, response))
      co_return co_await refuse_password(state);
  } else {
    co_return co_await authenticate_scram(state, secret);
  }
  co_return true;
}

asio::awaitable<bool> ClientSession::authenticate_scram(LoginState& state, const auth::UserSecret* secret) {
  // SCRAM-SHA-256, and over TLS SCRAM-SHA-256-PLUS first (as Postgres lists them). An unknown user goes
  // through the same exchange and fails at the proof.
  const bool plus_offered = tls_ && tls_login_ && !tls_login_->end_point.empty();
  std::string out, body;
  using namespace std::string_view_literals;
  const std::string_view mechanisms =
      plus_offered ? "SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"sv : "SCRAM-SHA-256\0\0"sv;
  append_auth_request(out, kAuthSasl, mechanisms);
  if (co_await net::write_all(socket_, out)) co_return false;
  if (!co_await read_auth_response(state, body)) co_return false;
  // SASLInitialResponse: mechanism\0, int32 length, data
  std::size_t mechanism_end = body.find('\0');
  const std::string_view mechanism = mechanism_end == std::string::npos
                                         ? std::string_view()
                                         : std::string_view(body).substr(0, mechanism_end);
  const bool plus = plus_offered && mechanism == auth::kScramSha256Plus;
  if ((!plus && mechanism != auth::kScramSha256) || body.size() < mechanism_end + 5) {
    state.result = LoginResult::protocol_error;
    co_await send_error("FATAL", sqlstate::kProtocolViolation, "malformed SASLInitialResponse");
    co_return false;
  }
  std::optional<auth::ScramVerifier> verifier;
  if (secret) verifier = secret->verifier;
  auth::ScramServer scram(
      verifier, state.user, proxy_.mock_secret(), auth::base64_encode(auth::random_string(18)),
      auth::ScramChannelBinding{plus_offered, plus, plus_offered ? tls_login_->end_point : std::string()});
  auto server_first = scram.on_client_first(std::string_view(body).substr(mechanism_end + 5));
  if (!server_first) {
    state.result = LoginResult::protocol_error;
    if (scram.binding_refused())
      log::info("login refused: user=", state.user, " from ", logged_peer(), ": ", scram.error());
    co_await send_error("FATAL", sqlstate::kProtocolViolation, "malformed SCRAM message: " + scram.error());
    co_return false;
  }
  out.clear();
  append_auth_request(out, kAuthSaslContinue, *server_first);
  if (co_await net::write_all(socket_, out)) co_return false;
  if (!co_await read_auth_response(state, body)) co_return false;
  auto server_final = scram.on_client_final(body);
  if (!server_final) co_return co_await refuse_password(state);
  out.clear();
  append_auth_request(out, kAuthSaslFinal, *server_final);
  if (co_await net::write_all(socket_, out)) co_return false;
  if (secret->kind == Kind::scram)
    state.scram_keys = std::make_pair(scram.client_key(), secret->verifier.server_key);
  co_return true;
}

asio::awaitable<bool> ClientSession::send_welcome(LoginState& state) {
  pool_->learn_from_login(state.user, state.scram_keys, state.password, state.looked_up);
  std::shared_ptr<const pool::ServerParameters> parameters = pool_->server_parameters();
  if (!parameters) {
    // The first client of a pool: log in to the server once to learn what it reports (server_version, ...).
    auto acquired = co_await pool_->acquire(config_->pool.query_wait_timeout);
    if (!acquired.lease) {
      state.result = LoginResult::server_unavailable;
      co_await send_error("FATAL", acquired.sqlstate, acquired.message);
      co_return false;
    }
    acquired.lease.release_clean();
    parameters = pool_->server_parameters();
  }
  client_key_ = proxy_.cancels().add(&cancel_target_);

  // Null only if a reload changed the server since the login above: nothing to report then.
  static const pool::ServerParameters kNone;
  const pool::ServerParameters& reported_by_server = parameters ? *parameters : kNone;
  std::string out;
  out.reserve(512);  // AuthenticationOk, ~14 ParameterStatus, BackendKeyData, ReadyForQuery: one allocation
  append_auth_request(out, kAuthOk);
  std::array<std::string_view, protocol::kTrackedParamCount> settings;  // the client's, set at once below
  for (const auto& [name, value] : reported_by_server) {
    // The client's own startup settings win over the server's defaults, as they would on Postgres; they are
    // applied to a backend before the client's first request runs on it.
    std::optional<TrackedParam> tracked = tracked_param(name);
    std::string_view reported = value;
    if (tracked && (*tracked == TrackedParam::application_name || !state.wished.get(*tracked).empty()))
      reported = state.wished.get(*tracked);
    if (tracked) settings[static_cast<std::size_t>(*tracked)] = reported;
    append_parameter_status(out, name, reported);
  }
  // search_path is not reported: the client's startup value is carried if pgmux can replay it as SQL.
  if (const std::string& wished = state.wished.get(TrackedParam::search_path); !wished.empty()) {
    std::string_view list = search_path_list(wished);
    if (list.empty())
      log::warning("a client's startup search_path is not a plain list of names; it is ignored: ", wished);
    else
      settings[static_cast<std::size_t>(TrackedParam::search_path)] = list;
  }
  params_.set_all(settings);
  append_backend_key_data(out, static_cast<std::uint32_t>(client_key_ >> 32),
                          static_cast<std::uint32_t>(client_key_));
  append_ready_for_query(out, 'I');
  co_return !co_await net::write_all(socket_, out);
}

asio::awaitable<void> ClientSession::forward_cancel(std::uint32_t pid, std::uint32_t key) {
  auto target = proxy_.cancels().find(pid, key);
  if (!target.database) co_return;  // unknown key, or the client is between transactions: nothing to cancel
  co_await pool::send_cancel_request(*target.database, target.pid, target.secret);
}

}  // namespace pgmux::session
