// A small HTTP/1.1 client for tests (Beast): keep-alive connections, every operation bounded by a timeout.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace pgmux::test {

struct HttpCall {
  std::string method = "POST";
  std::string target = "/sql";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct HttpReply {
  int status = 0;  // 0: no answer (connection failed, closed or timed out); `error` says why
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool keep_alive = false;
  std::string error;
  std::string header(const std::string& name) const;  // case-insensitive; "" when absent
};

// One request and its answer on `stream`, for tests that run many clients on one io_context.
boost::asio::awaitable<HttpReply> http_exchange(boost::beast::tcp_stream& stream,
                                                boost::beast::flat_buffer& buffer, const HttpCall& call,
                                                std::chrono::milliseconds timeout);

// A synchronous keep-alive connection to 127.0.0.1:port.
class HttpConnection {
 public:
  explicit HttpConnection(int port, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  bool connected() const { return connected_; }
  HttpReply send(const HttpCall& call);

 private:
  boost::asio::io_context io_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::chrono::milliseconds timeout_;
  bool connected_ = false;
};

}  // namespace pgmux::test
