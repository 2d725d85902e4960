// The client's way in: startup packet, TLS/GSS refusal, cancel requests, authentication, welcome messages.
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
#include "session/client_session.hpp"

namespace pgmux::session {

using namespace protocol;
using config::AuthType;
using Kind = auth::UserSecret::Kind;

namespace {
constexpr std::uint32_t kMaxAuthMessage = 65535;  // Postgres's own limit for authentication tokens
}

asio::awaitable<bool> ClientSession::login(LoginState& state) {
  StartupPacket startup;
  std::string packet, error;
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
    if (startup.kind == StartupPacket::Kind::ssl_request ||
        startup.kind == StartupPacket::Kind::gssenc_request) {
      // TLS and GSS encryption are not offered (yet): 'N', and the client goes on in plaintext or gives up.
      if (co_await net::write_all(socket_, "N")) co_return false;
      continue;
    }
    if (startup.kind == StartupPacket::Kind::cancel_request) {
      co_await forward_cancel(startup.cancel_pid, startup.cancel_key);
      co_return false;
    }
    break;
  }

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

  // From here a failure that names no reason is the client going away mid-login (or answering an
  // authentication request with something other than a password, which is as good as leaving).
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
  // No pool: a reload removed the database while this client was logging in.
  pool_ = db == config_->databases.end() ? nullptr : proxy_.pool_for(database_name, state.user);
  if (!pool_) {
    state.result = LoginResult::unknown_database;
    co_await send_error("FATAL", sqlstate::kUnknownDatabase,
                        "database \"" + database_name + "\" does not exist");
    co_return false;
  }
  cancel_target_.database = &db->second;
  pool_->client_joined();
  user_ = state.user;
  log::info("login: user=", user_, " database=", this->database()->name, " from ", peer());
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
  log::info("login failed: user=", user, " from ", peer(), ": wrong password or unknown user");
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
  char type = 0;
  std::size_t n = socket_.receive(asio::buffer(&type, 1), tcp::socket::message_peek, ec);
  return !ec && n == 1 && type == 'p';
}

asio::awaitable<bool> ClientSession::check_cleartext_password(LoginState& state,
                                                              const auth::UserSecret* secret) {
  // AuthenticationCleartextPassword is sent even when the password is already here: the exchange stays the
  // one Postgres has for `password` authentication. Neon's serverless driver, in pipelineConnect "password"
  // mode, removes its handler for this request (so it is ignored) and also swallows the first
  // ReadyForQuery, since it already told its caller the connection was ready; it needs nothing else.
  std::string out, body;
  char type;
  append_auth_request(out, kAuthCleartext);
  if (co_await net::write_all(socket_, out)) co_return false;
  if (co_await net::read_message(socket_, type, body, kMaxAuthMessage) || type != 'p') co_return false;
  std::string_view password(body.data(), std::min(body.size(), body.find('\0')));
  bool ok = false;
  if (secret && secret->kind == Kind::plain)
    ok = auth::constant_time_equal(password, secret->text);
  else if (secret && secret->kind == Kind::md5)
    ok = auth::constant_time_equal(auth::md5_stored_hash(state.user, password), secret->text);
  else if (secret) {
    auto derived =
        auth::scram_verifier_from_password(password, secret->verifier.salt, secret->verifier.iterations);
    ok = auth::constant_time_equal(auth::as_view(derived.stored_key),
                                   auth::as_view(secret->verifier.stored_key));
  }
  if (!ok) co_return co_await refuse_password(state);
  state.password = std::string(password);
  co_return true;
}

asio::awaitable<bool> ClientSession::authenticate(LoginState& state) {
  const std::string& user = state.user;
  const config::Config& config = *config_;
  auto secret_copy = proxy_.user_secret(user);
  const auth::UserSecret* secret = secret_copy ? &*secret_copy : nullptr;
  std::string out, body;
  char type;

  if (config.auth_type != AuthType::trust && config.auth_type != AuthType::plain && password_pipelined()) {
    // The password came without being asked for (Neon's driver, pipelineConnect "password"), so it can only
    // be checked in clear. Without TLS that is acceptable over WebSocket from loopback, or where the config
    // says so.
    if (!cleartext_allowed_) {
      state.result = LoginResult::refused_cleartext;
      log::info("login refused: user=", user, " from ", peer(),
                ": password sent in clear before it was asked");
      co_await send_error(
          "FATAL", sqlstate::kInvalidAuthorization,
          "a password sent before the server asks for it travels in clear text, which pgmux accepts only "
          "over WebSocket from a loopback address or with http.allow_cleartext_password: true; with Neon's "
          "serverless driver, set pipelineConnect: false to log in with SCRAM");
      co_return false;
    }
    log::debug("user=", user, " from ", peer(), " sent its password before it was asked: checked in clear");
    co_return co_await check_cleartext_password(state, secret);
  }

  if (config.auth_type == AuthType::trust) {
    if (!secret) co_return co_await refuse_password(state);
  } else if (config.auth_type == AuthType::plain) {
    co_return co_await check_cleartext_password(state, secret);
  } else if ((config.auth_type == AuthType::md5 && (!secret || secret->kind != Kind::scram)) ||
             (secret && secret->kind == Kind::md5)) {
    // md5 needs the password or its md5 hash: a user with only a SCRAM verifier gets SCRAM (as PgBouncer
    // does), and a user stored as an md5 hash gets md5 whatever auth_type says, as a hash cannot answer
    // SCRAM.
    auth::Md5Salt salt;
    auth::random_bytes(salt);
    append_auth_request(out, kAuthMd5, {reinterpret_cast<const char*>(salt.data()), salt.size()});
    if (co_await net::write_all(socket_, out)) co_return false;
    if (co_await net::read_message(socket_, type, body, kMaxAuthMessage) || type != 'p') co_return false;
    std::string_view response(body.data(), std::min(body.size(), body.find('\0')));
    if (!secret || !auth::md5_verify(user, *secret, salt, response))
      co_return co_await refuse_password(state);
  } else {
    // SCRAM-SHA-256. An unknown user goes through the same exchange and fails at the proof.
    std::optional<auth::ScramVerifier> verifier;
    if (secret) verifier = secret->verifier;
    auth::ScramServer scram(verifier, user, proxy_.mock_secret(),
                            auth::base64_encode(auth::random_string(18)));
    append_auth_request(out, kAuthSasl, std::string_view("SCRAM-SHA-256\0\0", 15));
    if (co_await net::write_all(socket_, out)) co_return false;
    if (co_await net::read_message(socket_, type, body, kMaxAuthMessage) || type != 'p') co_return false;
    // SASLInitialResponse: mechanism\0, int32 length, data
    std::size_t mechanism_end = body.find('\0');
    if (mechanism_end == std::string::npos || body.compare(0, mechanism_end, "SCRAM-SHA-256") != 0 ||
        body.size() < mechanism_end + 5) {
      state.result = LoginResult::protocol_error;
      co_await send_error("FATAL", sqlstate::kProtocolViolation, "malformed SASLInitialResponse");
      co_return false;
    }
    auto server_first = scram.on_client_first(std::string_view(body).substr(mechanism_end + 5));
    if (!server_first) {
      state.result = LoginResult::protocol_error;
      co_await send_error("FATAL", sqlstate::kProtocolViolation, "malformed SCRAM message: " + scram.error());
      co_return false;
    }
    out.clear();
    append_auth_request(out, kAuthSaslContinue, *server_first);
    if (co_await net::write_all(socket_, out)) co_return false;
    if (co_await net::read_message(socket_, type, body, kMaxAuthMessage) || type != 'p') co_return false;
    auto server_final = scram.on_client_final(body);
    if (!server_final) co_return co_await refuse_password(state);
    out.clear();
    append_auth_request(out, kAuthSaslFinal, *server_final);
    if (co_await net::write_all(socket_, out)) co_return false;
    if (secret->kind == Kind::scram)
      state.scram_keys = std::make_pair(scram.client_key(), secret->verifier.server_key);
  }
  co_return true;
}

asio::awaitable<bool> ClientSession::send_welcome(LoginState& state) {
  pool_->learn_from_login(state.user, state.scram_keys, state.password);
  pool::ServerParameters parameters = pool_->server_parameters();
  if (parameters.empty()) {
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

  std::string out;
  append_auth_request(out, kAuthOk);
  for (const auto& [name, value] : parameters) {
    // The client's own startup settings win over the server's defaults, as they would on Postgres; they are
    // applied to a backend before the client's first request runs on it.
    std::optional<TrackedParam> tracked = tracked_param(name);
    std::string_view reported = value;
    if (tracked && (*tracked == TrackedParam::application_name || !state.wished.get(*tracked).empty()))
      reported = state.wished.get(*tracked);
    params_.set(name, reported);
    append_parameter_status(out, name, reported);
  }
  // search_path is not reported: the client's startup value is carried if pgmux can replay it as SQL.
  if (const std::string& wished = state.wished.get(TrackedParam::search_path); !wished.empty()) {
    std::string_view list = search_path_list(wished);
    if (list.empty())
      log::warning("a client's startup search_path is not a plain list of names; it is ignored: ", wished);
    else
      params_.set(TrackedParam::search_path, list);
  }
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
