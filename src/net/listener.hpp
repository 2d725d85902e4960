// A listening socket per worker thread (SO_REUSEPORT), so the kernel spreads connections across cores.
#pragma once

#include <functional>

#include "net/asio.hpp"
#include "pgmux/config/config.hpp"

namespace pgmux::net {

// Throws std::runtime_error naming the address if something already listens on host:port.
void check_address_free(asio::io_context& io, const config::Endpoint& where);

// Opens host:port with SO_REUSEADDR and SO_REUSEPORT. Throws std::runtime_error naming the address.
Acceptor open_listener(asio::io_context& io, const config::Endpoint& where, bool defer_accept);

// tcp_defer_accept: TCP_DEFER_ACCEPT on a listening socket, or off again. Every protocol pgmux listens for
// has the client speak first, so the kernel may hold a connection back until its first bytes are there:
// accepting it and reading its first message then take one wake-up, not two, and a connection that never
// says anything never reaches pgmux. 45 s, as PgBouncer sets it.
void set_defer_accept(Acceptor& acceptor, bool on);

// Accepts until the acceptor closes, spawning `on_client` for each connection on the acceptor's executor.
asio::awaitable<void> accept_loop(Acceptor& acceptor, std::function<void(Socket)> on_client);

}  // namespace pgmux::net
