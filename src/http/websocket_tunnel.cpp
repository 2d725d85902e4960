// Postgres over WebSocket (Neon's serverless driver, Pool/Client): binary frames in, a ClientSession behind.
#include "http/websocket_tunnel.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <vector>

#include "log.hpp"
#include "net/socket_pair.hpp"
#include "session/client_session.hpp"

namespace pgmux::http {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using Tunnel = websocket::stream<beast::tcp_stream>;
using LocalSocket = asio::local::stream_protocol::socket;
using namespace asio::experimental::awaitable_operators;

namespace {

// The most either direction holds at once. A frame larger than this passes through in pieces.
constexpr std::size_t kChunk = 64 * 1024;

// Client frames to the session. The next piece is read only once the last one is written, so a session that
// does not read stops the client through TCP's window instead of growing a buffer here. Frame boundaries
// mean nothing: the session sees one byte stream.
asio::awaitable<void> frames_to_session(Tunnel& ws, LocalSocket& session_end) {
  beast::flat_buffer buffer(kChunk);
  for (;;) {
    auto [ec, n] = co_await ws.async_read_some(buffer, kChunk, use_nothrow);
    if (ec) break;  // closed by the client, reset, or timed out
    auto [wec, wn] = co_await asio::async_write(session_end, buffer.data(), use_nothrow);
    if (wec) break;  // the session has ended
    buffer.consume(n);
    if (ws.is_message_done()) buffer.shrink_to_fit();  // an idle tunnel keeps no buffer
  }
  // The session reads end-of-file, as it would from a TCP client that left, and ends the same way.
  error_code ignored;
  session_end.shutdown(LocalSocket::shutdown_send, ignored);
}

// Session bytes to the client, one binary frame per read. Waiting for readability first keeps an idle
// tunnel free of a read buffer.
asio::awaitable<void> session_to_frames(Tunnel& ws, LocalSocket& session_end) {
  std::vector<char> chunk;
  for (;;) {
    auto [ec] = co_await session_end.async_wait(LocalSocket::wait_read, use_nothrow);
    if (ec) break;
    chunk.resize(kChunk);
    auto [rec, n] = co_await session_end.async_read_some(asio::buffer(chunk), use_nothrow);
    if (rec) break;  // end-of-file: the session has ended
    auto [wec, wn] = co_await ws.async_write(asio::buffer(chunk.data(), n), use_nothrow);
    if (wec) co_return;  // the client is gone; the other direction sees it too
    error_code aec;
    if (session_end.available(aec) == 0) std::vector<char>().swap(chunk);
  }
  // The client answers the close frame, which ends frames_to_session; the handshake timeout bounds the wait.
  co_await ws.async_close(websocket::close_code::normal, use_nothrow);
}

}  // namespace

bool is_websocket_request(const HttpRequest& request, const config::HttpSqlConfig& config) {
  if (config.websocket_path.empty()) return false;
  std::string_view target = request.target();
  if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
  return target == config.websocket_path;
}

asio::awaitable<void> serve_websocket(beast::tcp_stream stream, HttpRequest request, const HttpPeer& from,
                                      session::Proxy& proxy) {
  error_code ec;
  const std::string peer = (from.tls ? "wss " : "websocket ") + from.text;

  // One end for the session, which takes it for a TCP socket (TCP_NODELAY and the remote address then fail
  // harmlessly), the other end for the frames.
  auto executor = stream.get_executor();
  net::Socket session_socket(net::worker_executor(executor));
  LocalSocket session_end(executor);
  net::open_socket_pair(session_socket, session_end, ec);
  if (ec) {
    log::warning("WebSocket from ", peer, " refused: socketpair failed: ", ec.message());
    co_return;  // closing the connection refuses the upgrade
  }

  stream.expires_never();  // the WebSocket's own timeouts take over
  Tunnel ws(std::move(stream));
  websocket::stream_base::timeout timeouts;
  timeouts.handshake_timeout = std::chrono::seconds(30);
  // A ping after 30 s of silence, closed after 60 s: a vanished client frees its session.
  timeouts.idle_timeout = std::chrono::seconds(60);
  timeouts.keep_alive_pings = true;
  ws.set_option(timeouts);
  ws.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(beast::http::field::server, "pgmux"); }));
  ws.read_message_max(0);  // read in pieces, so a message's size costs nothing here
  ws.binary(true);
  auto [aec] = co_await ws.async_accept(request, use_nothrow);
  if (aec) co_return;

  session::ClientTransport transport{.peer = peer,
                                     .websocket = true,
                                     .tls = from.tls,
                                     .loopback = from.loopback,
                                     .tls_end_point = from.tls_end_point};
  log::debug("WebSocket opened from ", peer);
  asio::co_spawn(executor,
                 session::ClientSession::serve(proxy, std::move(session_socket), std::move(transport)),
                 session::log_session_failure);
  co_await (frames_to_session(ws, session_end) && session_to_frames(ws, session_end));
  log::debug("WebSocket closed from ", peer);
}

}  // namespace pgmux::http
