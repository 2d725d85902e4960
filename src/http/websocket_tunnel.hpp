// Postgres over WebSocket (Neon's serverless driver, Pool/Client): binary frames in, a ClientSession behind.
#pragma once

#include <boost/beast/core/tcp_stream.hpp>

#include "http/sql_endpoint.hpp"
#include "net/asio.hpp"
#include "session/proxy.hpp"

namespace pgmux::http {

// Whether `request` is a WebSocket upgrade at http.websocket_path (the query string, such as the driver's
// ?address=HOST:PORT, is ignored: the startup packet names the database).
bool is_websocket_request(const HttpRequest& request, const config::HttpSqlConfig& config);

// Who is at the other end of an HTTP connection. Over HTTPS the stream is the plaintext end of a TLS tunnel,
// which has no address of its own, so this is taken from the TCP socket before the handshake.
struct HttpPeer {
  std::string text;  // "address:port", for the log
  bool loopback = false;
  bool tls = false;           // https:// and wss://
  std::string tls_end_point;  // with tls: the certificate hash SCRAM-SHA-256-PLUS binds to
};

// Takes over the HTTP connection: accepts the upgrade, then carries the Postgres wire protocol between the
// frames and a ClientSession, which gets one end of a socketpair and so knows nothing of WebSocket. Returns
// once both directions have ended.
asio::awaitable<void> serve_websocket(boost::beast::tcp_stream stream, HttpRequest request,
                                      const HttpPeer& from, session::Proxy& proxy);

}  // namespace pgmux::http
