// The Asio names every networked module uses, in one place.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

namespace pgmux {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// Errors come back as values: `auto [ec, n] = co_await sock.async_read_some(buf, use_nothrow);`
inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

}  // namespace pgmux
