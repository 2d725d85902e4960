// A listening socket per worker thread (SO_REUSEPORT), so the kernel spreads connections across cores.
#include "net/listener.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <stdexcept>

#include "log.hpp"

namespace pgmux::net {

void check_address_free(asio::io_context& io, const config::Endpoint& where) {
  // The workers' listeners share the port through SO_REUSEPORT, which would just as quietly share it with
  // another pgmux (or anything else using the option) already there. A plain bind fails if anyone listens.
  tcp::endpoint endpoint(asio::ip::make_address(where.host), where.port);
  Acceptor probe(io);
  probe.open(endpoint.protocol());
  probe.set_option(tcp::acceptor::reuse_address(true));
  error_code ec;
  probe.bind(endpoint, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + where.host + ":" + std::to_string(where.port) + ": " +
                             ec.message());
}

void set_defer_accept(Acceptor& acceptor, bool on) {
  error_code ec;  // an option the kernel lacks changes nothing that matters: accepting works either way
  acceptor.set_option(asio::detail::socket_option::integer<IPPROTO_TCP, TCP_DEFER_ACCEPT>(on ? 45 : 0), ec);
}

Acceptor open_listener(asio::io_context& io, const config::Endpoint& where, bool defer_accept) {
  tcp::endpoint endpoint(asio::ip::make_address(where.host), where.port);
  Acceptor acceptor(io);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true));
  error_code ec;
  acceptor.bind(endpoint, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + where.host + ":" + std::to_string(where.port) + ": " +
                             ec.message());
  set_defer_accept(acceptor, defer_accept);
  acceptor.listen(asio::socket_base::max_listen_connections);
  return acceptor;
}

asio::awaitable<void> accept_loop(Acceptor& acceptor, std::function<void(Socket)> on_client) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(use_nothrow);
    // A connection accepted just as the acceptor closed (a takeover handed the listeners over meanwhile) is
    // served all the same: it left the shared accept queue, so the new process will never see it.
    if (!ec) on_client(std::move(socket));
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      // EMFILE and friends: say so and go on; the connection stays in the backlog until there is room.
      log::warning("accept failed: ", ec.message());
      asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(100));
      co_await pause.async_wait(use_nothrow);
    }
  }
}

}  // namespace pgmux::net
