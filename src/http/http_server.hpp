// The HTTP listener: POST /sql for the Neon serverless driver; GET /metrics, /healthz and /readyz for
// Prometheus and orchestrators.
#pragma once

#include "admin/metrics.hpp"
#include "net/asio.hpp"
#include "session/proxy.hpp"

namespace pgmux::http {

// Accepts on `acceptor` until it closes, one coroutine per connection (keep-alive, 30 s idle limit).
asio::awaitable<void> serve_http(tcp::acceptor& acceptor, session::Proxy& proxy, admin::Metrics& metrics);

}  // namespace pgmux::http
