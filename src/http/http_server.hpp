// The HTTP listener: POST /sql and WebSocket (http.websocket_path) for the Neon serverless driver; GET
// /metrics, /healthz and /readyz for Prometheus and orchestrators.
#pragma once

#include <memory>

#include "admin/metrics.hpp"
#include "http/sql_endpoint.hpp"
#include "net/asio.hpp"
#include "session/proxy.hpp"

namespace pgmux::http {

// Accepts on `acceptor` until it closes, one coroutine per connection (keep-alive, 30 s idle limit). The
// listeners of all workers share one SqlEndpoint (and so one credential cache). Without one (`sql` null: the
// listen.metrics port) only /metrics, /healthz and /readyz are served.
asio::awaitable<void> serve_http(net::Acceptor& acceptor, session::Proxy& proxy, admin::Metrics& metrics,
                                 std::shared_ptr<SqlEndpoint> sql);

}  // namespace pgmux::http
