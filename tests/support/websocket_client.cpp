// A Postgres client over WebSocket (Beast), speaking the wire protocol by hand, every wait bounded.
#include "websocket_client.hpp"

#include <arpa/inet.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <cstring>

#include "raw_socket.hpp"

namespace pgmux::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using boost::system::error_code;

struct WebSocketClient::State {
  asio::io_context io;
  websocket::stream<beast::tcp_stream> ws{io};
  beast::flat_buffer buffer;

  // Runs one asynchronous operation to completion or until `timeout`; on timeout the socket is closed, so
  // the operation ends (with an error) before this returns.
  template <typename Start>
  error_code run(Start start, std::chrono::milliseconds timeout) {
    std::optional<error_code> result;
    io.restart();
    start([&](error_code ec, auto&&...) { result = ec; });
    io.run_for(timeout);
    if (!result) {
      error_code ignored;
      beast::get_lowest_layer(ws).socket().close(ignored);
      io.restart();
      io.run();
      return asio::error::timed_out;
    }
    return *result;
  }
};

WebSocketClient::WebSocketClient(int port, const std::string& path) : state_(std::make_unique<State>()) {
  auto& s = *state_;
  tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port));
  if (s.run([&](auto done) { beast::get_lowest_layer(s.ws).async_connect(endpoint, done); },
            std::chrono::seconds(10)))
    return;
  websocket::response_type response;
  error_code ec = s.run(
      [&](auto done) { s.ws.async_handshake(response, "127.0.0.1:" + std::to_string(port), path, done); },
      std::chrono::seconds(10));
  if (ec) {
    refused_status_ = response.result_int() == 101 ? 0 : response.result_int();
    return;
  }
  s.ws.binary(true);
  connected_ = true;
}

WebSocketClient::~WebSocketClient() {
  drop();
}

bool WebSocketClient::send(const std::string& bytes) {
  auto& s = *state_;
  return !s.run([&](auto done) { s.ws.async_write(asio::buffer(bytes), done); }, std::chrono::seconds(10));
}

bool WebSocketClient::read_message(WireMessage& message, std::chrono::milliseconds timeout) {
  auto& s = *state_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pending_.size() >= 5) {
      std::uint32_t length;
      std::memcpy(&length, pending_.data() + 1, 4);
      length = ntohl(length);
      if (pending_.size() >= 1 + std::size_t{length}) {
        message.type = pending_[0];
        message.body = pending_.substr(5, length - 4);
        pending_.erase(0, 1 + length);
        return true;
      }
    }
    if (closed_) return false;
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    s.buffer.clear();
    if (s.run([&](auto done) { s.ws.async_read(s.buffer, done); }, left)) {
      closed_ = true;
      return false;
    }
    pending_ += beast::buffers_to_string(s.buffer.data());
  }
}

bool WebSocketClient::read_until_ready(std::vector<WireMessage>& messages,
                                       std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    WireMessage m;
    if (!read_message(m, left)) return false;
    messages.push_back(m);
    if (m.type == 'Z') return true;
  }
}

bool WebSocketClient::closed_by_server(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  WireMessage m;
  while (read_message(m, std::chrono::duration_cast<std::chrono::milliseconds>(
                             deadline - std::chrono::steady_clock::now()))) {
  }
  return closed_ && std::chrono::steady_clock::now() < deadline;
}

void WebSocketClient::drop() {
  error_code ignored;
  beast::get_lowest_layer(state_->ws).socket().close(ignored);
  closed_ = true;
}

std::string wire_message(char type, const std::string& body) {
  return std::string(1, type) + be32(static_cast<std::uint32_t>(body.size() + 4)) + body;
}

std::string startup_message(const std::string& user, const std::string& database) {
  std::string body = be32(196608) + "user" + '\0' + user + '\0' + "database" + '\0' + database + '\0' + '\0';
  return be32(static_cast<std::uint32_t>(body.size() + 4)) + body;
}

std::string password_message(const std::string& password) {
  return wire_message('p', password + '\0');
}

std::string query_message(const std::string& sql) {
  return wire_message('Q', sql + '\0');
}

std::string terminate_message() {
  return wire_message('X', "");
}

std::string error_field(const std::string& body, char code) {
  std::size_t pos = 0;
  while (pos < body.size() && body[pos] != '\0') {
    char field = body[pos++];
    std::size_t end = body.find('\0', pos);
    if (end == std::string::npos) return "";
    if (field == code) return body.substr(pos, end - pos);
    pos = end + 1;
  }
  return "";
}

std::vector<std::string> data_rows(const std::vector<WireMessage>& messages) {
  std::vector<std::string> rows;
  for (const auto& m : messages) {
    if (m.type != 'D') continue;
    std::string row;
    std::size_t pos = 2;
    const int columns = (static_cast<unsigned char>(m.body[0]) << 8) | static_cast<unsigned char>(m.body[1]);
    for (int c = 0; c < columns; ++c) {
      std::int32_t length;
      std::memcpy(&length, m.body.data() + pos, 4);
      length = static_cast<std::int32_t>(ntohl(static_cast<std::uint32_t>(length)));
      pos += 4;
      if (c > 0) row += '|';
      if (length < 0) {
        row += "<null>";
      } else {
        row += m.body.substr(pos, length);
        pos += length;
      }
    }
    rows.push_back(row);
  }
  return rows;
}

}  // namespace pgmux::test
