// The HTTP listener: POST /sql and WebSocket (http.websocket_path) for the Neon serverless driver; GET
// /metrics, /healthz and /readyz for Prometheus and orchestrators.
#include "http/http_server.hpp"

#include <array>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "http/cors.hpp"
#include "http/result_json.hpp"
#include "http/sql_endpoint.hpp"
#include "http/websocket_tunnel.hpp"
#include "log.hpp"
#include "net/tls_tunnel.hpp"
#include "session/cleartext_rule.hpp"

namespace pgmux::http {

namespace beast = boost::beast;
namespace bhttp = beast::http;
using namespace asio::experimental::awaitable_operators;
using Response = bhttp::response<bhttp::string_body>;

namespace {

// The status line and header fields as they go on the wire. Written with the body in one gather write, in
// place of Beast's serializer, which cost more than the rest of an answer's writing together.
std::string response_head(const Response& res) {
  std::string head;
  head.reserve(192);
  head += "HTTP/1.1 ";
  head += std::to_string(res.result_int());
  head += ' ';
  head += res.reason();
  head += "\r\n";
  for (const auto& field : res) {
    head += field.name_string();
    head += ": ";
    head += field.value();
    head += "\r\n";
  }
  head += "\r\n";
  return head;
}

Response json(bhttp::status status, std::string body) {
  Response res{status, 11};
  res.set(bhttp::field::content_type, "application/json");
  res.body() = std::move(body);
  return res;
}

// A database is ready when its pools hold an idle backend, or when its server accepts a TCP connection now.
asio::awaitable<bool> database_reachable(session::Proxy& proxy, const config::DatabaseConfig& db) {
  for (const auto& [key, pool] : proxy.pools())
    if (key.first == db.name && pool->counts().idle > 0) co_return true;
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  auto [rec, endpoints] = co_await resolver.async_resolve(db.host, std::to_string(db.port), use_nothrow);
  if (rec) co_return false;
  tcp::socket socket(executor);
  asio::steady_timer deadline(executor, std::chrono::seconds(1));
  auto outcome =
      co_await (asio::async_connect(socket, endpoints, use_nothrow) || deadline.async_wait(use_nothrow));
  co_return outcome.index() == 0 && !std::get<0>(std::get<0>(outcome));
}

asio::awaitable<Response> serve_sql(const HttpRequest& req, SqlEndpoint& sql, session::Proxy& proxy,
                                    admin::Metrics& metrics, CredentialMemo& memo) {
  std::shared_ptr<const config::Config> config = proxy.config();
  const auto& cors = config->http.cors_allowed_origins;
  if (req.method() == bhttp::verb::options) {
    Response res{bhttp::status::no_content, 11};
    add_preflight_headers(req, res, cors);
    co_return res;
  }
  if (req.method() != bhttp::verb::post)
    co_return json(bhttp::status::method_not_allowed,
                   error_json("08P01", "only POST (and OPTIONS) are served at /sql"));
  const auto start = std::chrono::steady_clock::now();
  SqlAnswer answer = co_await sql.answer(req, &memo);
  metrics.record_http_sql(answer.status,
                          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  Response res = json(static_cast<bhttp::status>(answer.status), std::move(answer.body));
  add_cors_headers(req, res, cors);
  co_return res;
}

asio::awaitable<Response> route(const HttpRequest& req, session::Proxy& proxy, admin::Metrics& metrics,
                                SqlEndpoint* sql, CredentialMemo& memo) {
  std::string_view target = req.target();
  if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
  if (target == "/sql" && sql) co_return co_await serve_sql(req, *sql, proxy, metrics, memo);
  if (req.method() != bhttp::verb::get && req.method() != bhttp::verb::head)
    co_return json(bhttp::status::method_not_allowed, R"({"error":"only GET is served here"})");
  if (target == "/healthz") co_return json(bhttp::status::ok, R"({"status":"ok"})");
  if (target == "/readyz") {
    if (proxy.draining()) co_return json(bhttp::status::service_unavailable, R"({"status":"draining"})");
    std::string unreachable;
    std::shared_ptr<const config::Config> config = proxy.config();
    for (const auto& [name, db] : config->databases) {
      if (co_await database_reachable(proxy, db)) continue;
      unreachable += (unreachable.empty() ? "\"" : ",\"") + name + "\"";
    }
    if (unreachable.empty()) co_return json(bhttp::status::ok, R"({"status":"ready"})");
    co_return json(bhttp::status::service_unavailable,
                   R"({"status":"unready","unreachable":[)" + unreachable + "]}");
  }
  if (target == "/metrics") {
    Response res{bhttp::status::ok, 11};
    res.set(bhttp::field::content_type, "text/plain; version=0.0.4");
    res.body() = co_await metrics.scrape();
    co_return res;
  }
  co_return json(bhttp::status::not_found,
                 R"({"error":"not found; try /sql, /metrics, /healthz or /readyz"})");
}

// 413 with the same JSON shape as every other /sql error; the connection closes since the rest of the body
// is not read.
Response body_too_large(std::uint64_t limit) {
  Response res = json(bhttp::status::payload_too_large,
                      error_json("54000", "the request body is larger than http.max_body_size (" +
                                              std::to_string(limit) + " bytes)"));
  res.keep_alive(false);
  return res;
}

// 431 for a request line and headers over http.max_header_size (connection strings and tokens fit easily in
// the default); the connection closes, as the rest of the request is not read.
Response header_too_large(std::uint32_t limit) {
  Response res =
      json(bhttp::status::request_header_fields_too_large,
           error_json("54000", "the request line and headers are larger than http.max_header_size (" +
                                   std::to_string(limit) + " bytes)"));
  res.keep_alive(false);
  return res;
}

asio::awaitable<void> http_session(tcp::socket socket, HttpPeer peer, session::Proxy& proxy,
                                   admin::Metrics& metrics, std::shared_ptr<SqlEndpoint> sql) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  const std::uint64_t body_limit = proxy.config()->http.max_body_size;
  const std::uint32_t header_limit = proxy.config()->http.max_header_size;
  bool body_left_unread = false;
  CredentialMemo memo;
  for (;;) {
    stream.expires_after(std::chrono::seconds(30));
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(header_limit);
    parser.body_limit(body_limit);
    auto [ec, n] = co_await bhttp::async_read_header(stream, buffer, parser, use_nothrow);
    if (!ec && parser.get()[bhttp::field::expect] == "100-continue") {
      bhttp::response<bhttp::empty_body> go_on{bhttp::status::continue_, 11};
      std::tie(ec, n) = co_await bhttp::async_write(stream, go_on, use_nothrow);
    }
    if (!ec) std::tie(ec, n) = co_await bhttp::async_read(stream, buffer, parser, use_nothrow);
    Response res;
    if (ec == bhttp::error::body_limit) {
      res = body_too_large(body_limit);
      metrics.record_http_sql(413, 0);
      body_left_unread = true;
    } else if (ec == bhttp::error::header_limit) {
      res = header_too_large(header_limit);
      body_left_unread = true;
    } else if (ec) {
      break;
    } else {
      const auto& req = parser.get();
      if (sql && is_websocket_request(req, proxy.config()->http)) {
        if (beast::websocket::is_upgrade(req) && !proxy.draining()) {
          co_await serve_websocket(std::move(stream), parser.release(), peer, proxy);
          co_return;
        }
        res = json(proxy.draining() ? bhttp::status::service_unavailable : bhttp::status::upgrade_required,
                   error_json(proxy.draining() ? "57P01" : "08P01",
                              proxy.draining() ? "pgmux is shutting down"
                                               : "this path carries Postgres over WebSocket: upgrade to it"));
        res.keep_alive(false);
      } else {
        stream.expires_never();  // a query may take as long as its statement_timeout allows
        res = co_await route(req, proxy, metrics, sql.get(), memo);
      }
      // While draining, each connection ends after its answer so that the process can exit.
      res.keep_alive(res.keep_alive() && req.keep_alive() && !proxy.draining());
    }
    res.set(bhttp::field::server, "pgmux");
    res.prepare_payload();
    stream.expires_after(std::chrono::seconds(30));
    const std::string head = response_head(res);
    const std::array<asio::const_buffer, 2> wire{asio::buffer(head), asio::buffer(res.body())};
    auto [wec, wn] = co_await asio::async_write(stream, wire, use_nothrow);
    if (wec || !res.keep_alive()) break;
  }
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  if (body_left_unread) {
    // The client may still be sending the refused body. Closing with unread bytes would reset the connection,
    // and a reset can destroy the 413 before the client reads it: drop what arrives for a moment first.
    stream.expires_after(std::chrono::seconds(2));
    buffer.clear();
    for (;;) {
      auto [rec, rn] = co_await stream.async_read_some(buffer.prepare(64 * 1024), use_nothrow);
      if (rec) break;
    }
  }
}

HttpPeer describe_peer(const tcp::socket& socket) {
  HttpPeer peer;
  error_code ec;
  const tcp::endpoint remote = socket.remote_endpoint(ec);
  if (ec) return peer;
  peer.text = remote.address().to_string() + ":" + std::to_string(remote.port());
  peer.loopback = session::is_loopback(remote.address());
  return peer;
}

// HTTPS (http.tls): the handshake, then HTTP on the plaintext end of a TLS tunnel, as over TCP.
asio::awaitable<void> https_session(tcp::socket socket, std::shared_ptr<const net::ServerTls> tls,
                                    session::Proxy& proxy, admin::Metrics& metrics,
                                    std::shared_ptr<SqlEndpoint> sql) {
  HttpPeer peer = describe_peer(socket);
  peer.tls = true;
  peer.tls_end_point = tls->end_point;
  const asio::any_io_executor executor = socket.get_executor();
  error_code ec;
  const tcp protocol = socket.local_endpoint(ec).protocol();
  const auto fd = socket.release(ec);
  if (ec) co_return;
  net::Socket tcp_socket(net::worker_executor(executor), protocol, fd);
  net::SslPtr ssl(SSL_new(tls->ctx.get()));
  if (!ssl) co_return;
  SSL_set_accept_state(ssl.get());
  // No client certificate here (tls.client_cert is for the Postgres port): browsers and drivers have none.
  SSL_set_verify(ssl.get(), SSL_VERIFY_NONE, nullptr);
  asio::steady_timer deadline(executor, std::chrono::seconds(30));
  auto outcome = co_await (net::tls_handshake(tcp_socket, ssl.get()) || deadline.async_wait(use_nothrow));
  if (outcome.index() == 1 || !std::get<0>(outcome).empty()) {
    log::info("TLS handshake with HTTP client ", peer.text,
              " failed: ", outcome.index() == 1 ? std::string("timed out") : std::get<0>(outcome));
    co_return;
  }
  net::Socket plaintext = net::start_tls_tunnel(std::move(tcp_socket), std::move(ssl), ec);
  if (ec) co_return;
  tcp::socket http_socket(executor);
  const auto plain_fd = plaintext.release(ec);
  if (ec) co_return;
  http_socket.assign(tcp::v4(), plain_fd, ec);
  if (ec) co_return;
  co_await http_session(std::move(http_socket), std::move(peer), proxy, metrics, std::move(sql));
}

}  // namespace

asio::awaitable<void> serve_http(net::Acceptor& acceptor, session::Proxy& proxy, admin::Metrics& metrics,
                                 std::shared_ptr<SqlEndpoint> sql) {
  for (;;) {
    // Beast's streams take the type-erased executor.
    auto [ec, socket] =
        co_await acceptor.async_accept(asio::any_io_executor(acceptor.get_executor()), use_nothrow);
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      log::warning("HTTP accept failed: ", ec.message());
      continue;
    }
    // A response (or a TLS record, or a WebSocket frame) written in more than one piece must not wait for
    // the client's delayed ACK: Nagle's algorithm would hold the second piece for up to 40 ms.
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    // HTTPS on listen.http with http.tls (never on listen.metrics: `sql` null); the context as of now, so a
    // reload's renewed certificate serves the connections after it.
    std::shared_ptr<const net::ServerTls> tls =
        sql && proxy.config()->http.tls ? proxy.server_tls() : nullptr;
    if (tls) {
      asio::co_spawn(acceptor.get_executor(),
                     https_session(std::move(socket), std::move(tls), proxy, metrics, sql), asio::detached);
      continue;
    }
    HttpPeer peer = describe_peer(socket);
    asio::co_spawn(acceptor.get_executor(),
                   http_session(std::move(socket), std::move(peer), proxy, metrics, sql), asio::detached);
  }
}

}  // namespace pgmux::http
