// Whole-message reads and writes for the login phases, where messages are few and small.
#include "net/message_io.hpp"

#include <sys/socket.h>

#include <cerrno>

#include "pgmux/protocol/wire.hpp"

namespace pgmux::net {

using protocol::read_u32;

namespace {

// receive_now and send_now move what the socket has or takes right now, without waiting: Asio would complete
// even an operation that succeeds at once through its scheduler (a posted handler, two locks and a resume of
// the coroutine), and at login the rest of a message has usually arrived with its header, and a reply fits
// the empty send buffer whole. The rest, if any, goes through Asio. They count the bytes moved; a failure
// other than "would block" is returned in `ec`.

// A failed call's errno as an error, unless it only means "not now".
void fail_unless_would_block(error_code& ec) {
  if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
    ec = error_code(errno, boost::system::system_category());
}

std::size_t receive_now(Socket& socket, char* into, std::size_t size, error_code& ec) {
  ssize_t n = ::recv(socket.native_handle(), into, size, MSG_DONTWAIT);
  if (n > 0) return static_cast<std::size_t>(n);
  if (n == 0)
    ec = asio::error::eof;
  else
    fail_unless_would_block(ec);
  return 0;
}

std::size_t send_now(Socket& socket, std::string_view bytes, error_code& ec) {
  ssize_t n = ::send(socket.native_handle(), bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n >= 0) return static_cast<std::size_t>(n);
  fail_unless_would_block(ec);
  return 0;
}

// Fills `into` whole: what is there now, then Asio for the rest. Only for a body whose header was just read:
// a header is awaited through Asio directly, since trying first would cost a failed recv before every wait.
asio::awaitable<error_code> read_rest(Socket& socket, char* into, std::size_t size) {
  error_code ec;
  std::size_t done = size > 0 ? receive_now(socket, into, size, ec) : 0;
  if (ec || done == size) co_return ec;
  auto [read_ec, n] = co_await asio::async_read(socket, asio::buffer(into + done, size - done), use_nothrow);
  co_return read_ec;
}

}  // namespace

asio::awaitable<error_code> read_startup_packet(Socket& socket, std::string& packet,
                                                std::uint32_t max_length) {
  char header[4];
  auto [ec, n] = co_await asio::async_read(socket, asio::buffer(header), use_nothrow);
  if (ec) co_return ec;
  std::uint32_t length = read_u32(header);
  if (length < 8 || length > max_length) co_return make_error_code(boost::system::errc::protocol_error);
  packet.resize(length - 4);
  co_return co_await read_rest(socket, packet.data(), packet.size());
}

asio::awaitable<error_code> read_message(Socket& socket, char& type, std::string& body,
                                         std::uint32_t max_length) {
  char header[protocol::kHeaderSize];
  auto [ec, n] = co_await asio::async_read(socket, asio::buffer(header), use_nothrow);
  if (ec) co_return ec;
  type = header[0];
  std::uint32_t length = read_u32(header + 1);
  if (length < 4 || length > max_length) co_return make_error_code(boost::system::errc::protocol_error);
  body.resize(length - 4);
  co_return co_await read_rest(socket, body.data(), body.size());
}

asio::awaitable<error_code> write_all(Socket& socket, std::string_view bytes) {
  error_code ec;
  bytes.remove_prefix(send_now(socket, bytes, ec));
  if (ec || bytes.empty()) co_return ec;
  auto [write_ec, n] =
      co_await asio::async_write(socket, asio::buffer(bytes.data(), bytes.size()), use_nothrow);
  co_return write_ec;
}

}  // namespace pgmux::net
