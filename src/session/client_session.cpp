// One client connection after login: each transaction borrows a backend and bytes flow both ways until it
// ends.
#include "session/client_session.hpp"

#include <sys/socket.h>

#include "log.hpp"
#include "net/buffer_pool.hpp"
#include "net/message_io.hpp"
#include "pgmux/protocol/builders.hpp"
#include "pgmux/protocol/message_scanner.hpp"
#include "pgmux/protocol/wire.hpp"

namespace pgmux::session {

using namespace asio::experimental::awaitable_operators;
using namespace protocol;

namespace {

// Client -> backend: every message updates the transaction tracker; Terminate is not forwarded (the backend
// outlives the client in the pool).
struct ClientMessages {
  TxTracker& tracker;
  bool wants_body(char) const { return false; }
  ScanStep on_message(char, std::string_view) { return ScanStep::kForward; }
  ScanStep on_header(char type, std::uint32_t) {
    if (type == 'X') return ScanStep::kStop;
    tracker.on_client_message(type);
    return ScanStep::kForward;
  }
};

// Backend -> client: only ReadyForQuery is read, for the transaction status it carries.
struct BackendMessages {
  TxTracker& tracker;
  bool saw_ready = false;
  bool wants_body(char type) const { return type == 'Z'; }
  ScanStep on_message(char, std::string_view body) {
    tracker.on_ready_for_query(body.empty() ? 'E' : body[0]);
    saw_ready = true;
    return ScanStep::kForward;
  }
  ScanStep on_header(char, std::uint32_t) { return ScanStep::kForward; }
};

// Reads what the socket has without blocking; waits for readability only when there is nothing. Reading first
// saves a trip through the reactor when data is already there, the common case under load.
asio::awaitable<std::size_t> read_available(tcp::socket& socket, net::IoBuffer& buffer, error_code& ec) {
  for (;;) {
    std::size_t n = socket.read_some(asio::buffer(buffer.space(), buffer.space_size()), ec);
    if (ec != asio::error::would_block) {
      if (!ec && n == 0) ec = asio::error::eof;
      co_return n;
    }
    std::tie(ec) = co_await socket.async_wait(tcp::socket::wait_read, use_nothrow);
    if (ec) co_return 0;
  }
}

bool peer_closed(tcp::socket& socket) {
  char byte;
  return ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

}  // namespace

ClientSession::ClientSession(Proxy& proxy, tcp::socket socket) : proxy_(proxy), socket_(std::move(socket)) {
  proxy_.client_count().fetch_add(1, std::memory_order_relaxed);
}

ClientSession::~ClientSession() {
  if (client_key_) proxy_.cancels().remove(client_key_);
  proxy_.client_count().fetch_sub(1, std::memory_order_relaxed);
}

asio::awaitable<void> ClientSession::run() {
  error_code ec;
  socket_.set_option(tcp::no_delay(true), ec);
  socket_.non_blocking(true, ec);
  bool logged_in;
  auto timeout = proxy_.config().pool.client_login_timeout;
  if (timeout.count() > 0) {
    asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
    auto outcome = co_await (login() || timer.async_wait(use_nothrow));
    logged_in = outcome.index() == 0 && std::get<0>(outcome);
    if (outcome.index() == 1) log::info("client_login_timeout: closing a client that did not log in in time");
  } else {
    logged_in = co_await login();
  }
  if (logged_in) co_await serve();
  socket_.close(ec);
}

asio::awaitable<void> ClientSession::serve() {
  const auto wait_timeout = proxy_.config().pool.query_wait_timeout;
  pool::BackendLease lease;
  for (;;) {
    if (!lease) {
      // Between transactions: no backend and no buffer, only a wait for the client's next bytes.
      auto [ec] = co_await socket_.async_wait(tcp::socket::wait_read, use_nothrow);
      if (ec || peer_closed(socket_)) co_return;
      auto acquired = co_await pool_->acquire(wait_timeout);
      if (!acquired.lease) {
        co_await send_error("FATAL", acquired.sqlstate, acquired.message);
        co_return;
      }
      lease = std::move(acquired.lease);
    }
    cancel_target_.set(lease->pid, lease->secret_key);
    RelayEnd end = co_await relay(*lease);
    cancel_target_.clear();
    switch (end) {
      case RelayEnd::released:
        lease.release_clean();
        continue;
      case RelayEnd::client_gone:
        if (relay_state_.releasable()) {
          if (!session_mode_ || co_await reset_backend(*lease)) lease.release_clean();
        }
        co_return;  // a dirty lease closes the backend when it goes out of scope
      case RelayEnd::backend_gone:
        lease.close();
        co_await send_error("FATAL", sqlstate::kConnectionFailure,
                            "server closed the connection unexpectedly; the transaction is lost");
        co_return;
      case RelayEnd::client_protocol_violation:
        lease.close();
        co_await send_error("FATAL", sqlstate::kProtocolViolation, "invalid message length from the client");
        co_return;
    }
  }
}

asio::awaitable<ClientSession::RelayEnd> ClientSession::relay(pool::Backend& backend) {
  auto outcome = co_await (pump_client_to_backend(backend) || pump_backend_to_client(backend));
  co_return std::visit([](RelayEnd end) { return end; }, outcome);
}

asio::awaitable<ClientSession::RelayEnd> ClientSession::pump_client_to_backend(pool::Backend& backend) {
  net::IoBuffer buffer;
  MessageScanner scanner(proxy_.config().pool.max_packet_size);
  ClientMessages messages{relay_state_.tracker};
  for (;;) {
    error_code ec;
    std::size_t n = co_await read_available(socket_, buffer, ec);
    if (ec) co_return RelayEnd::client_gone;
    buffer.received(n);
    ScanResult scanned = scanner.scan(buffer.data(), messages);
    if (scanned.forward > 0) {
      relay_state_.client_writing = true;
      auto [wec, written] = co_await asio::async_write(
          backend.socket, asio::buffer(buffer.data().data(), scanned.forward), use_nothrow);
      relay_state_.client_writing = false;
      if (wec) co_return RelayEnd::backend_gone;
      buffer.consume(scanned.forward);
    }
    if (scanned.bad_length) co_return RelayEnd::client_protocol_violation;
    if (scanned.stopped) co_return RelayEnd::client_gone;  // Terminate
    buffer.compact();
    relay_state_.client_partial = !buffer.empty() || !scanner.at_boundary();
  }
}

asio::awaitable<ClientSession::RelayEnd> ClientSession::pump_backend_to_client(pool::Backend& backend) {
  net::IoBuffer buffer;
  // The server is trusted to frame its messages; the limit only guards against a corrupt stream.
  MessageScanner scanner(0x7fffffff);
  BackendMessages messages{relay_state_.tracker};
  for (;;) {
    error_code ec;
    std::size_t n = co_await read_available(backend.socket, buffer, ec);
    if (ec) co_return RelayEnd::backend_gone;
    buffer.received(n);
    messages.saw_ready = false;
    ScanResult scanned = scanner.scan(buffer.data(), messages);
    if (scanned.bad_length) co_return RelayEnd::backend_gone;
    if (scanned.forward > 0) {
      auto [wec, written] = co_await asio::async_write(
          socket_, asio::buffer(buffer.data().data(), scanned.forward), use_nothrow);
      if (wec) co_return RelayEnd::client_gone;
      buffer.consume(scanned.forward);
    }
    buffer.compact();
    if (messages.saw_ready && !session_mode_ && relay_state_.releasable() && buffer.empty() &&
        scanner.at_boundary())
      co_return RelayEnd::released;
  }
}

asio::awaitable<bool> ClientSession::reset_backend(pool::Backend& backend) {
  const std::string& query = proxy_.config().pool.server_reset_query;
  if (query.empty()) co_return true;
  std::string out;
  append_query(out, query);
  if (co_await net::write_all(backend.socket, out)) co_return false;
  std::string body;
  for (;;) {
    char type;
    if (co_await net::read_message(backend.socket, type, body, 1 << 20)) co_return false;
    if (type == 'Z') co_return !body.empty() && body[0] == 'I';
  }
}

asio::awaitable<void> ClientSession::send_error(std::string_view severity, std::string_view sqlstate,
                                                std::string_view message) {
  std::string out;
  append_error(out, severity, sqlstate, message);
  co_await net::write_all(socket_, out);
}

}  // namespace pgmux::session
