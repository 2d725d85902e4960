// The Asio names every networked module uses, in one place.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

namespace pgmux {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// Every worker is an io_context of its own, and the sockets of the Postgres protocol carry that executor's
// own type rather than the type-erased any_io_executor: 8 bytes instead of 48 in every socket, and again in
// every operation pending on one (an idle client always has one: the wait for its next query).
namespace net {
using Executor = asio::io_context::executor_type;
using Socket = asio::basic_stream_socket<asio::ip::tcp, Executor>;
using Acceptor = asio::basic_socket_acceptor<asio::ip::tcp, Executor>;

// The worker an any_io_executor (a coroutine's, a timer's) stands for.
inline Executor worker_executor(const asio::any_io_executor& executor) {
  return *executor.target<Executor>();
}
}  // namespace net

// Errors come back as values: `auto [ec, n] = co_await sock.async_read_some(buf, use_nothrow);`
inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

}  // namespace pgmux
