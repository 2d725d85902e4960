// One client connection after login: each transaction borrows a backend and bytes flow both ways until it
// ends.
#include "session/client_session.hpp"

#include "admin/console.hpp"
#include "log.hpp"
#include "net/message_io.hpp"
#include "pgmux/protocol/builders.hpp"
#include "pgmux/protocol/sql_keywords.hpp"
#include "pgmux/protocol/wire.hpp"
#include "session/cleartext_rule.hpp"

namespace pgmux::session {

using namespace asio::experimental::awaitable_operators;
using namespace protocol;

void log_session_failure(std::exception_ptr failure) {
  if (!failure) return;
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    log::error("client session failed: ", e.what());
  }
}

ClientSession::ClientSession(Proxy& proxy, net::Socket socket, ClientTransport transport)
    : proxy_(proxy),
      socket_(std::move(socket)),
      connected_at_(pool::Clock::now()),
      config_(proxy.config()),
      websocket_(transport.websocket),
      loopback_(transport.loopback),
      tls_(transport.tls) {
  if (!transport.tls_end_point.empty())
    tls_login_ = std::make_unique<TlsLogin>(TlsLogin{std::move(transport.tls_end_point), {}});
  if (!transport.peer.empty())
    transport_peer_ = std::make_unique<const std::string>(std::move(transport.peer));
  proxy_.client_count().fetch_add(1, std::memory_order_relaxed);
  if (websocket_) proxy_.websocket_client_count().fetch_add(1, std::memory_order_relaxed);
}

std::string ClientSession::peer() const {
  if (transport_peer_) return *transport_peer_;
  error_code ec;
  tcp::endpoint peer = socket_.remote_endpoint(ec);
  // A client whose connection was reset has no peer any more: only its disconnect line says so.
  if (ec) return "(disconnected)";
  return peer.address().to_string() + ":" + std::to_string(peer.port());
}

bool ClientSession::from_loopback() const {
  // A transport that knows the address said so; a TLS client's socket is its tunnel's, but TLS allows
  // cleartext anyway.
  if (loopback_ || transport_peer_) return loopback_;
  error_code ec;
  tcp::endpoint peer = socket_.remote_endpoint(ec);
  return !ec && is_loopback(peer.address());
}

ClientSession::~ClientSession() {
  if (client_key_) proxy_.cancels().remove(client_key_);
  if (limited_database_) proxy_.client_limits().leave(limited_database_->name, user_);
  if (admin_) proxy_.admin_client_count().fetch_sub(1, std::memory_order_relaxed);
  if (pool_) {
    pool_->client_left();
    auto lasted = std::chrono::duration_cast<std::chrono::milliseconds>(pool::Clock::now() - connected_at_);
    log::info("disconnect: user=", user_, " database=", database()->name, " from ", logged_peer(), " after ",
              lasted.count(), " ms");
  }
  if (websocket_) proxy_.websocket_client_count().fetch_sub(1, std::memory_order_relaxed);
  proxy_.client_count().fetch_sub(1, std::memory_order_relaxed);
}

asio::awaitable<void> ClientSession::serve(Proxy& proxy, net::Socket socket, ClientTransport transport) {
  auto session = std::make_unique<ClientSession>(proxy, std::move(socket), std::move(transport));
  if (!co_await session->login_in_time()) co_return;
  if (session->admin_) {
    co_await admin::Console(proxy, session->socket_).run();
    co_return;
  }
  const config::PoolConfig& settings = session->config_->pool;
  session->relay_.emplace(session->socket_, *session->pool_, session->cancel_target_, session->params_,
                          RelaySettings{.pool = settings,
                                        .release_at_idle = !session->session_mode_,
                                        .count_traffic = session->config_->metrics.enabled,
                                        .websocket = session->websocket_});
  ClientSession* self = session.release();  // owned by the relay's callbacks until relay_finished()
  Relay& relay = *self->relay_;
  relay.start(*self);
  // A drain that began while this client was logging in did not see its relay: catch up. (Same thread as the
  // drain's walk, which runs after the flag is set, so no relay is missed; likewise for a reload that removed
  // its database.) It may still run the transaction it came for.
  if (proxy.draining() || self->pool_->retired()) relay.drain_after_next_transaction();
}

asio::awaitable<bool> ClientSession::login_in_time() {
  error_code ec;
  socket_.set_option(tcp::no_delay(true), ec);
  socket_.non_blocking(true, ec);
  LoginState state;
  auto timeout = config_->pool.client_login_timeout;
  bool logged_in = false;
  if (timeout.count() == 0) {
    logged_in = co_await login(state);
  } else {
    asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
    auto outcome = co_await (login(state) || timer.async_wait(use_nothrow));
    if (outcome.index() == 1) {
      log::info("client_login_timeout: closing a client that did not log in in time");
      state.result = LoginResult::login_timeout;
    }
    logged_in = outcome.index() == 0 && std::get<0>(outcome);
  }
  if (logged_in) state.result = LoginResult::ok;
  tls_login_.reset();  // an idle client keeps nothing it needed only to log in
  if (state.result)
    proxy_.logins().add(websocket_ ? LoginOutcomes::websocket : LoginOutcomes::postgres, *state.result);
  co_return logged_in;
}

void ClientSession::describe(ClientSnapshot& out) const {
  out.user = user_;
  out.websocket = websocket_;
  out.connected_at = connected_at_;
  split_address(peer(), out.addr, out.port);
  error_code ec;
  tcp::endpoint local = socket_.local_endpoint(ec);
  if (!ec) {
    out.local_addr = local.address().to_string();
    out.local_port = local.port();
  }
}

void ClientSession::relay_finished() {
  // Posted: the relay calls this from inside its own handlers (or from start(), under serve()), and co_spawn
  // runs the coroutine at once up to its first wait (Boost 1.81 dispatches it). A wind_up with nothing to
  // wait for would free the session, relay included, under them (serve() read it after: a
  // heap-use-after-free). The handler owns the session, so one never run (the io_context stopped) still frees
  // it.
  asio::post(socket_.get_executor(), [self = std::unique_ptr<ClientSession>(this)]() mutable {
    auto executor = self->socket_.get_executor();
    asio::co_spawn(executor, wind_up(std::move(self)), log_session_failure);
  });
}

asio::awaitable<void> ClientSession::wind_up(std::unique_ptr<ClientSession> self) {
  // A cancel the client sent may still reach its backend: then it serves nobody else.
  bool cancel_pending = self->cancel_target_.clear();
  Relay& relay = *self->relay_;
  pool::BackendLease& lease = relay.lease();
  auto release = [&] {
    if (cancel_pending)
      lease.close(pool::CloseReason::cancel_pending);
    else
      lease.release_clean();
  };
  // The client is gone or refused: its backend goes back clean, or is closed.
  auto settle_backend = [&]() -> asio::awaitable<void> {
    if (!lease) co_return;
    if (relay.state().releasable() && !self->session_mode_ && !relay.pinned()) {
      release();
    } else if (relay.backend_reusable() && co_await self->clean_up_backend(*lease)) {
      release();
    } else if (relay.state().tracker.outstanding() > 0) {
      // A query is still running for nobody: stop it, or it runs to the end on a connection the pool no
      // longer counts (Postgres notices the closed socket only when it next writes).
      log::info("cancelling the query of a client that left mid-query: user=", self->user_);
      co_await pool::send_cancel_request(*self->database(), lease->pid, lease->secret_key);
    }
    // Otherwise the lease closes the backend as it goes out of scope.
  };
  switch (relay.end()) {
    case Relay::End::client_gone:
      co_await settle_backend();
      co_return;
    case Relay::End::backend_gone:
      lease.close(pool::CloseReason::broken);
      co_await self->send_error("FATAL", sqlstate::kConnectionFailure,
                                "server closed the connection unexpectedly; the transaction is lost");
      co_return;
    case Relay::End::client_protocol_violation:
      co_await settle_backend();
      co_await self->send_error("FATAL", sqlstate::kProtocolViolation, relay.error_message());
      co_await self->close_gracefully();
      co_return;
    case Relay::End::no_backend:
      co_await self->send_error("FATAL", relay.error_sqlstate(), relay.error_message());
      co_return;
    case Relay::End::shutting_down: {
      if (lease && relay.backend_reusable() && co_await self->clean_up_backend(*lease)) release();
      // Built before the co_await: GCC 12 destroys a temporary of a conditional expression inside a co_await
      // twice.
      std::string why = self->proxy_.draining() ? std::string("pgmux is shutting down")
                                                : "database \"" + self->database()->name +
                                                      "\" was removed from pgmux's configuration";
      co_await self->send_error("FATAL", sqlstate::kAdminShutdown, why);
      co_return;
    }
    case Relay::End::killed:
      // Whatever runs on the backend is stopped and the connection dropped, as PgBouncer's KILL does.
      if (lease && relay.state().tracker.outstanding() > 0)
        co_await pool::send_cancel_request(*self->database(), lease->pid, lease->secret_key);
      lease.close(pool::CloseReason::killed);
      co_await self->send_error("FATAL", sqlstate::kAdminShutdown,
                                "database killed (KILL in the admin console)");
      co_return;
    case Relay::End::query_timeout: {
      co_await self->send_error("FATAL", relay.error_sqlstate(), relay.error_message());
      // libpq reports a FATAL only once the connection ends: end our side now, not after the cancel below.
      // (A shutdown, not a close: unread bytes of the client's would make a close reset the connection and
      // could lose the error.)
      error_code ignored;
      self->socket_.shutdown(tcp::socket::shutdown_send, ignored);
      if (!lease) co_return;
      // The slot goes to whoever waits at once (a frozen server must not hold it for as long as the cancel
      // may take); the cancel then stops the query if the server is still there to hear it.
      const std::uint32_t pid = lease->pid, key = lease->secret_key;
      lease.close(pool::CloseReason::query_timeout);
      co_await pool::send_cancel_request(*self->database(), pid, key);
      co_return;
    }
    case Relay::End::client_idle_timeout:
      co_await self->send_error("FATAL", sqlstate::kIdleSessionTimeout,
                                "client_idle_timeout: closing an idle connection");
      co_return;
  }
}

asio::awaitable<bool> ClientSession::clean_up_backend(pool::Backend& backend) {
  // Closing instead would cost a new login to Postgres (a SCRAM exchange) for every client that vanishes.
  std::string out;
  int replies = 0;
  const protocol::TxTracker& tracker = relay_->state().tracker;
  if (tracker.unsynced()) {
    // A Sync alone would commit what the client's unsynced messages did outside a transaction block: it
    // never asked for that. A statement that cannot parse fails the batch first, so that the Sync rolls it
    // back, as Postgres does when a client leaves without one.
    append_parse(out, "", "pgmux: the client left in the middle of an extended-query batch");
    append_sync(out);
    ++replies;
  }
  if (tracker.unsynced() || tracker.status() != 'I') {
    append_query(out, "ROLLBACK");
    ++replies;
  }
  // A pinned client's state (LISTEN, temp tables, advisory locks...) must go whatever the pool's reset query
  // says (in transaction mode it is sent to pinned clients' backends only, and only DISCARD ALL removes all
  // of that), and even if the pool has none.
  std::string_view reset = config_->pool.server_reset_query;
  if (relay_->pinned() && (!session_mode_ || reset.empty())) reset = "DISCARD ALL";
  if ((session_mode_ || relay_->pinned()) && !reset.empty()) {
    append_query(out, reset);
    ++replies;
    if (may_drop_statements(reset)) backend.statements.clear();
    if (session_effect(reset).kind == SessionEffect::Kind::resets_search_path)
      backend.params.set(TrackedParam::search_path, "");
  }
  if (replies == 0) co_return true;

  auto exchange = [&]() -> asio::awaitable<bool> {
    if (co_await net::write_all(backend.socket, out)) co_return false;
    std::string body;
    char status = 'E';
    while (replies > 0) {
      char type;
      if (co_await net::read_message(backend.socket, type, body, 1 << 20)) co_return false;
      if (type == 'Z') {
        --replies;
        status = body.empty() ? 'E' : body[0];
      }
      std::string_view name, value;
      if (type == 'S' && parse_parameter_status(body, name, value)) backend.params.set(name, value);
    }
    co_return status == 'I';
  };
  asio::steady_timer deadline(co_await asio::this_coro::executor, std::chrono::seconds(5));
  auto outcome = co_await (exchange() || deadline.async_wait(use_nothrow));
  co_return outcome.index() == 0 && std::get<0>(outcome);
}

asio::awaitable<void> ClientSession::close_gracefully() {
  // A client still sending (a message over max_packet_size, say) would otherwise get a reset for the unread
  // bytes, which can destroy the error before it reads it: its input is drained for a while first. (Shutting
  // down our side instead makes libpq report the end of the connection before the error it already has.)
  auto drain = [&]() -> asio::awaitable<void> {
    char sink[4096];
    for (;;) {
      auto [error, n] = co_await socket_.async_read_some(asio::buffer(sink), use_nothrow);
      if (error) co_return;
    }
  };
  asio::steady_timer deadline(co_await asio::this_coro::executor, std::chrono::seconds(2));
  co_await (drain() || deadline.async_wait(use_nothrow));
}

asio::awaitable<void> ClientSession::send_error(std::string_view severity, std::string_view sqlstate,
                                                std::string_view message) {
  std::string out;
  append_error(out, severity, sqlstate, message);
  co_await net::write_all(socket_, out);
}

}  // namespace pgmux::session
