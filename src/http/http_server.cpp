// The HTTP listener: GET /metrics, /healthz and /readyz for Prometheus and orchestrators.
#include "http/http_server.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "log.hpp"

namespace pgmux::http {

namespace beast = boost::beast;
namespace bhttp = beast::http;
using namespace asio::experimental::awaitable_operators;
using Response = bhttp::response<bhttp::string_body>;

namespace {

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

asio::awaitable<Response> route(const bhttp::request<bhttp::string_body>& req, session::Proxy& proxy,
                                admin::Metrics& metrics) {
  std::string_view target = req.target();
  if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
  if (req.method() != bhttp::verb::get && req.method() != bhttp::verb::head)
    co_return json(bhttp::status::method_not_allowed, R"({"error":"only GET is served here"})");
  if (target == "/healthz") co_return json(bhttp::status::ok, R"({"status":"ok"})");
  if (target == "/readyz") {
    if (proxy.draining()) co_return json(bhttp::status::service_unavailable, R"({"status":"draining"})");
    std::string unreachable;
    for (const auto& [name, db] : proxy.config().databases) {
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
    res.body() = metrics.scrape();
    co_return res;
  }
  co_return json(bhttp::status::not_found, R"({"error":"not found; try /metrics, /healthz or /readyz"})");
}

asio::awaitable<void> http_session(tcp::socket socket, session::Proxy& proxy, admin::Metrics& metrics) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    stream.expires_after(std::chrono::seconds(30));
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(8 * 1024);
    parser.body_limit(64 * 1024);
    auto [ec, n] = co_await bhttp::async_read(stream, buffer, parser, use_nothrow);
    if (ec) break;
    const auto& req = parser.get();
    Response res = co_await route(req, proxy, metrics);
    res.keep_alive(req.keep_alive());
    res.set(bhttp::field::server, "pgmux");
    res.prepare_payload();
    auto [wec, wn] = co_await bhttp::async_write(stream, res, use_nothrow);
    if (wec || !res.keep_alive()) break;
  }
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace

asio::awaitable<void> serve_http(tcp::acceptor& acceptor, session::Proxy& proxy, admin::Metrics& metrics) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(use_nothrow);
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      log::warning("HTTP accept failed: ", ec.message());
      continue;
    }
    asio::co_spawn(acceptor.get_executor(), http_session(std::move(socket), proxy, metrics), asio::detached);
  }
}

}  // namespace pgmux::http
