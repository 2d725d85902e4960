// Whole-message reads and writes for the login phases, where messages are few and small.
#include "net/message_io.hpp"

#include "pgmux/protocol/wire.hpp"

namespace pgmux::net {

using protocol::read_u32;

asio::awaitable<error_code> read_startup_packet(Socket& socket, std::string& packet,
                                                std::uint32_t max_length) {
  char header[4];
  auto [ec, n] = co_await asio::async_read(socket, asio::buffer(header), use_nothrow);
  if (ec) co_return ec;
  std::uint32_t length = read_u32(header);
  if (length < 8 || length > max_length) co_return make_error_code(boost::system::errc::protocol_error);
  packet.resize(length - 4);
  std::tie(ec, n) = co_await asio::async_read(socket, asio::buffer(packet), use_nothrow);
  co_return ec;
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
  std::tie(ec, n) = co_await asio::async_read(socket, asio::buffer(body), use_nothrow);
  co_return ec;
}

asio::awaitable<error_code> write_all(Socket& socket, std::string_view bytes) {
  auto [ec, n] = co_await asio::async_write(socket, asio::buffer(bytes.data(), bytes.size()), use_nothrow);
  co_return ec;
}

}  // namespace pgmux::net
