// A small HTTP/1.1 client for tests (Beast): keep-alive connections, every operation bounded by a timeout.
#include "http_client.hpp"

#include <strings.h>
#include <boost/beast/http.hpp>

namespace pgmux::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

std::string HttpReply::header(const std::string& name) const {
  for (const auto& [key, value] : headers)
    if (strcasecmp(key.c_str(), name.c_str()) == 0) return value;
  return "";
}

asio::awaitable<HttpReply> http_exchange(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                                         const HttpCall& call, std::chrono::milliseconds timeout) {
  HttpReply reply;
  bhttp::request<bhttp::string_body> request{bhttp::string_to_verb(call.method), call.target, 11};
  request.set(bhttp::field::host, "127.0.0.1");
  for (const auto& [name, value] : call.headers) request.set(name, value);
  request.body() = call.body;
  request.prepare_payload();
  stream.expires_after(timeout);
  auto [wec, wn] = co_await bhttp::async_write(stream, request, kNoThrow);
  if (wec) {
    reply.error = "write: " + wec.message();
    co_return reply;
  }
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(256 << 20);
  auto [rec, rn] = co_await bhttp::async_read(stream, buffer, parser, kNoThrow);
  stream.expires_never();
  if (rec) {
    reply.error = "read: " + rec.message();
    co_return reply;
  }
  const auto& response = parser.get();
  reply.status = static_cast<int>(response.result_int());
  reply.body = response.body();
  reply.keep_alive = response.keep_alive();
  for (const auto& field : response) reply.headers.emplace_back(field.name_string(), field.value());
  co_return reply;
}

HttpConnection::HttpConnection(int port, std::chrono::milliseconds timeout)
    : stream_(io_), timeout_(timeout) {
  stream_.expires_after(timeout);
  boost::system::error_code ec;
  stream_.async_connect(asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), port),
                        [&](boost::system::error_code e) { ec = e; });
  io_.run();
  connected_ = !ec;
}

HttpReply HttpConnection::send(const HttpCall& call) {
  HttpReply reply;
  if (!connected_) {
    reply.error = "not connected";
    return reply;
  }
  asio::co_spawn(io_, http_exchange(stream_, buffer_, call, timeout_),
                 [&](std::exception_ptr e, HttpReply r) {
                   if (e) r.error = "exception";
                   reply = std::move(r);
                 });
  io_.restart();
  io_.run();
  return reply;
}

}  // namespace pgmux::test
