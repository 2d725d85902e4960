// One server connection to Postgres, and the login that opens it.
#include "pool/backend.hpp"

#include <sys/socket.h>

#include "log.hpp"
#include "net/message_io.hpp"
#include "net/tls_tunnel.hpp"
#include "pgmux/auth/crypto.hpp"
#include "pgmux/auth/md5.hpp"
#include "pgmux/auth/scram.hpp"
#include "pgmux/protocol/builders.hpp"
#include "pgmux/protocol/wire.hpp"

namespace pgmux::pool {
namespace {

using namespace asio::experimental::awaitable_operators;
using namespace protocol;

constexpr std::uint32_t kMaxLoginMessage = 1 << 20;

BackendLogin failure(std::string sqlstate, std::string message) {
  BackendLogin out;
  out.sqlstate = std::move(sqlstate);
  out.message = std::move(message);
  return out;
}

std::string scram_nonce() {
  return auth::base64_encode(auth::random_string(18));
}

// Answers one authentication request; returns an error text or "".
struct Authenticator {
  const BackendCredentials& creds;
  std::optional<auth::ScramClient> scram;

  std::string plain_password() const {
    if (creds.secret && creds.secret->kind == auth::UserSecret::Kind::plain) return creds.secret->text;
    return {};
  }

  std::string answer(std::string_view body, std::string& out) {
    std::uint32_t code = read_u32(body.data());
    std::string_view data = body.substr(4);
    switch (code) {
      case kAuthCleartext:
        if (plain_password().empty()) return "server asked for a cleartext password, and none is configured";
        append_password(out, plain_password());
        return {};
      case kAuthMd5: {
        if (!creds.secret || creds.secret->kind == auth::UserSecret::Kind::scram || data.size() < 4)
          return "server asked for md5, and no plain password or md5 hash is configured";
        auth::Md5Salt salt;
        std::copy_n(data.data(), 4, salt.begin());
        append_password(out, auth::md5_client_response(creds.user, *creds.secret, salt));
        return {};
      }
      case kAuthSasl: {
        if (data.find(std::string_view("SCRAM-SHA-256\0", 14)) == std::string_view::npos)
          return "server offers no SASL mechanism pgmux knows";
        if (!plain_password().empty())
          scram = auth::ScramClient::with_password(plain_password(), scram_nonce());
        else if (creds.scram_keys)
          scram =
              auth::ScramClient::with_keys(creds.scram_keys->first, creds.scram_keys->second, scram_nonce());
        else
          return "server asked for SCRAM, and pgmux has neither the password nor keys from a client's login";
        append_sasl_initial_response(out, "SCRAM-SHA-256", scram->client_first());
        return {};
      }
      case kAuthSaslContinue: {
        if (!scram) return "unexpected SASLContinue";
        auto final_message = scram->on_server_first(data);
        if (!final_message) return "SCRAM: " + scram->error();
        append_sasl_response(out, *final_message);
        return {};
      }
      case kAuthSaslFinal:
        if (!scram || !scram->on_server_final(data)) return "SCRAM: the server's signature does not verify";
        return {};
      default:
        return "server asked for unsupported authentication method " + std::to_string(code);
    }
  }
};

const char* sslmode_name(config::SslMode mode) {
  switch (mode) {
    case config::SslMode::disable:
      return "disable";
    case config::SslMode::prefer:
      return "prefer";
    case config::SslMode::require:
      return "require";
    case config::SslMode::verify_ca:
      return "verify-ca";
    case config::SslMode::verify_full:
      return "verify-full";
  }
  return "?";
}

// SSLRequest, then on 'S' the handshake, after which `socket` is the plaintext end of a TLS tunnel; on 'N'
// prefer goes on in clear and the other modes give up. Empty on success, else the failure for the client.
asio::awaitable<std::optional<BackendLogin>> start_server_tls(net::Socket& socket,
                                                              const config::DatabaseConfig& db,
                                                              const net::BackendTls& tls) {
  const std::string where = db.host + ":" + std::to_string(db.port);
  std::string out;
  append_ssl_request(out);
  if (auto ec = co_await net::write_all(socket, out))
    co_return failure(sqlstate::kConnectionFailure, "server write failed: " + ec.message());
  // Exactly one byte: whatever the server sent after it is TLS for OpenSSL to read, never buffered here
  // (CVE-2021-23222, the client side of the injection).
  char answer = 0;
  auto [ec, n] = co_await asio::async_read(socket, asio::buffer(&answer, 1), use_nothrow);
  if (ec) co_return failure(sqlstate::kConnectionFailure, "server closed the connection on SSLRequest");
  if (answer == 'N') {
    if (tls.mode == config::SslMode::prefer) co_return std::nullopt;
    co_return failure(sqlstate::kServerRejectedConnection,
                      "server " + where + " does not support TLS, and databases." + db.name + ".sslmode is " +
                          sslmode_name(tls.mode));
  }
  if (answer != 'S')
    co_return failure(sqlstate::kProtocolViolation,
                      "server " + where + " answered SSLRequest with something other than S or N");
  net::SslPtr ssl = net::new_backend_ssl(tls);
  if (!ssl) co_return failure(sqlstate::kConnectionFailure, "cannot create a TLS connection");
  SSL_set_connect_state(ssl.get());
  std::string problem = co_await net::tls_handshake(socket, ssl.get());
  if (!problem.empty()) {
    log::warning("TLS handshake with server ", where, " (databases.", db.name, ", sslmode ",
                 sslmode_name(tls.mode), ") failed: ", problem);
    co_return failure(sqlstate::kServerRejectedConnection, "TLS handshake with server " + where +
                                                               " failed (sslmode " + sslmode_name(tls.mode) +
                                                               "): " + problem);
  }
  error_code tec;
  net::Socket plaintext = net::start_tls_tunnel(std::move(socket), std::move(ssl), tec);
  if (tec) co_return failure(sqlstate::kConnectionFailure, "cannot start the TLS tunnel: " + tec.message());
  socket = std::move(plaintext);
  co_return std::nullopt;
}

asio::awaitable<BackendLogin> login(const config::DatabaseConfig& db, const BackendCredentials& creds) {
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  auto [rec, endpoints] = co_await resolver.async_resolve(db.host, std::to_string(db.port), use_nothrow);
  if (rec) co_return failure(sqlstate::kUnableToConnect, "cannot resolve " + db.host + ": " + rec.message());
  net::Socket socket(net::worker_executor(executor));
  auto [cec, endpoint] = co_await asio::async_connect(socket, endpoints, use_nothrow);
  if (cec)
    co_return failure(sqlstate::kUnableToConnect,
                      "cannot connect to " + db.host + ":" + std::to_string(db.port) + ": " + cec.message());
  socket.set_option(tcp::no_delay(true));
  socket.non_blocking(true);  // the relay reads what is there before it waits
  if (creds.tls) {
    if (auto failed = co_await start_server_tls(socket, db, *creds.tls)) co_return std::move(*failed);
  }

  std::string out;
  append_startup(out, {{"user", creds.user}, {"database", db.dbname}});
  if (auto ec = co_await net::write_all(socket, out))
    co_return failure(sqlstate::kConnectionFailure, "server write failed: " + ec.message());

  Authenticator authenticator{creds, {}};
  BackendLogin result;
  auto backend = std::make_unique<Backend>(std::move(socket));
  backend->protocol = endpoint.protocol();
  std::string body;
  for (;;) {
    char type;
    if (auto ec = co_await net::read_message(backend->socket, type, body, kMaxLoginMessage))
      co_return failure(sqlstate::kConnectionFailure,
                        "server closed the connection during login: " + ec.message());
    switch (type) {
      case 'R': {
        if (body.size() < 4)
          co_return failure(sqlstate::kProtocolViolation, "malformed authentication request");
        if (read_u32(body.data()) == kAuthOk) break;
        out.clear();
        std::string problem = authenticator.answer(body, out);
        if (!problem.empty())
          co_return failure(sqlstate::kInvalidAuthorization, "server login failed: " + problem);
        if (!out.empty()) {
          if (auto ec = co_await net::write_all(backend->socket, out))
            co_return failure(sqlstate::kConnectionFailure, "server write failed: " + ec.message());
        }
        break;
      }
      case 'S': {
        std::string_view name, value;
        if (parse_parameter_status(body, name, value)) result.parameters.emplace_back(name, value);
        break;
      }
      case 'K':
        if (body.size() >= 8) {
          backend->pid = read_u32(body.data());
          backend->secret_key = read_u32(body.data() + 4);
        }
        break;
      case 'E': {
        auto fields = parse_error_fields(body);
        co_return failure(fields.sqlstate.empty() ? sqlstate::kConnectionFailure : fields.sqlstate,
                          "server login failed: " + fields.message);
      }
      case 'N':
        break;
      case 'Z':
        for (const auto& [name, value] : result.parameters) backend->params.set(name, value);
        result.backend = std::move(backend);
        co_return result;
      default:
        co_return failure(sqlstate::kProtocolViolation,
                          std::string("unexpected message '") + type + "' from the server during login");
    }
  }
}

}  // namespace

asio::awaitable<BackendLogin> connect_backend(const config::DatabaseConfig& db,
                                              const BackendCredentials& creds, config::Duration timeout) {
  asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
  auto outcome = co_await (login(db, creds) || timer.async_wait(use_nothrow));
  if (outcome.index() == 1)
    co_return failure(sqlstate::kUnableToConnect, "server_connect_timeout: no connection to " + db.host +
                                                      ":" + std::to_string(db.port) + " in time");
  co_return std::move(std::get<0>(outcome));
}

namespace {

asio::awaitable<void> deliver_cancel_request(const config::DatabaseConfig& db, std::uint32_t pid,
                                             std::uint32_t key) {
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  auto [rec, endpoints] = co_await resolver.async_resolve(db.host, std::to_string(db.port), use_nothrow);
  if (rec) co_return;
  net::Socket server(net::worker_executor(executor));
  auto [cec, endpoint] = co_await asio::async_connect(server, endpoints, use_nothrow);
  if (cec) {
    log::warning("cancel request could not reach ", db.host, ": ", cec.message());
    co_return;
  }
  std::string out;
  append_cancel_request(out, pid, key);
  co_await net::write_all(server, out);
  // Postgres closes the connection once it has read the request; waiting for that keeps the order of events.
  char byte;
  co_await server.async_read_some(asio::buffer(&byte, 1), use_nothrow);
}

// A server that is stopped (SIGSTOP) or cut off accepts the connection in its kernel but never reads: the
// session sending the cancel must not wait for it forever.
constexpr auto kCancelRequestTimeout = std::chrono::seconds(5);

}  // namespace

asio::awaitable<void> send_cancel_request(const config::DatabaseConfig& db, std::uint32_t pid,
                                          std::uint32_t key) {
  asio::steady_timer timer(co_await asio::this_coro::executor, kCancelRequestTimeout);
  auto outcome = co_await (deliver_cancel_request(db, pid, key) || timer.async_wait(use_nothrow));
  if (outcome.index() == 1)
    log::warning("cancel request to ", db.host, " not delivered within 5 s; given up");
}

Backend::~Backend() {
  unwatch(*this);
}

void unwatch(Backend& backend) {
  if (!backend.watched_by) return;
  backend.watched_by->unwatch_from_any_thread(backend.socket.native_handle(), backend.watch_id);
  backend.watched_by = nullptr;
}

void move_to(Backend& backend, const asio::any_io_executor& executor) {
  if (backend.socket.get_executor() == executor) return;
  unwatch(backend);
  error_code ec;
  tcp::socket::native_handle_type fd = backend.socket.release(ec);
  if (ec) return;  // a dead socket: the relay will find out and drop it
  backend.socket = net::Socket(net::worker_executor(executor), backend.protocol, fd);
  backend.socket.non_blocking(true, ec);
}

namespace {
constexpr auto kTrustQuietSetFor = std::chrono::seconds(1);
}  // namespace

bool looks_healthy(Backend& backend) {
  if (!backend.socket.is_open()) return false;
  net::ReadinessSet* here =
      backend.watched_by == net::ReadinessSet::of_this_thread() ? backend.watched_by : nullptr;
  // The set knows only the events it has taken: a busy worker may not have taken one that came a moment ago.
  // A backend used this recently is trusted on the set's word (PgBouncer trusts its event loop likewise); one
  // idle for longer is asked.
  if (here && here->quiet(backend.watch_id) && Clock::now() - backend.last_used < kTrustQuietSetFor)
    return true;
  char byte;
  ssize_t n = ::recv(backend.socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return false;
  if (here) here->clear_edges(backend.watch_id);  // an edge of bytes a relay had read already
  return true;
}

}  // namespace pgmux::pool
