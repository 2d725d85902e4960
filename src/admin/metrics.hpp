// The Prometheus view of the running proxy, read from the pools' own counters when scraped.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "net/asio.hpp"
#include "pool/traffic.hpp"
#include "session/proxy.hpp"

namespace pgmux::admin {

// Nothing here is touched on the hot path: relays count into per-worker slots, and a scrape sums them.
// Counters advance by the difference since the previous scrape, so they stay monotonic as Prometheus expects.
class Metrics {
 public:
  explicit Metrics(session::Proxy& proxy);
  // Prometheus text format. Visits each worker first, for the clients' states.
  asio::awaitable<std::string> scrape();
  // One answered POST /sql: its status and how long it took (prometheus-cpp's own atomics, no lock of ours).
  void record_http_sql(int status, double seconds);

 private:
  // Clients holding a backend and waiting for one, by protocol (postgres, websocket, http-sql).
  struct ClientStates {
    std::array<int, 3> active{}, waiting{};
  };
  asio::awaitable<ClientStates> client_states();
  void update_clients(const ClientStates& states);
  void update_pools();
  void update_backends(const prometheus::Labels& labels, const pool::PoolCounts& now,
                       const pool::PoolCounts& before);
  void update_process();
  void update_logins();

  session::Proxy& proxy_;
  std::mutex mutex_;
  prometheus::Registry registry_;
  prometheus::Family<prometheus::Gauge>& clients_;
  prometheus::Family<prometheus::Gauge>& pool_clients_;
  prometheus::Family<prometheus::Gauge>& pool_waiting_;
  prometheus::Family<prometheus::Gauge>& pool_size_;
  prometheus::Family<prometheus::Gauge>& backends_;
  prometheus::Family<prometheus::Gauge>& clients_active_;
  prometheus::Family<prometheus::Gauge>& clients_waiting_;
  prometheus::Family<prometheus::Gauge>& pool_paused_;
  prometheus::Family<prometheus::Counter>& backend_connects_;
  prometheus::Family<prometheus::Counter>& backend_connect_failures_;
  prometheus::Family<prometheus::Counter>& backend_closes_;
  prometheus::Family<prometheus::Histogram>& query_seconds_;
  prometheus::Family<prometheus::Counter>& transactions_;
  prometheus::Family<prometheus::Counter>& queries_;
  prometheus::Family<prometheus::Counter>& lazy_prepares_;
  prometheus::Family<prometheus::Counter>& statement_evictions_;
  prometheus::Family<prometheus::Counter>& server_errors_;
  prometheus::Family<prometheus::Counter>& pinned_sessions_;
  prometheus::Family<prometheus::Counter>& bytes_received_;
  prometheus::Family<prometheus::Counter>& bytes_sent_;
  prometheus::Family<prometheus::Histogram>& lent_seconds_;
  prometheus::Family<prometheus::Histogram>& wait_seconds_;
  prometheus::Family<prometheus::Counter>& http_sql_requests_;
  prometheus::Histogram& http_sql_seconds_;
  prometheus::Gauge& resident_bytes_;
  prometheus::Gauge& open_fds_;
  prometheus::Counter& cpu_seconds_;
  prometheus::Family<prometheus::Counter>& logins_;
  std::array<std::array<std::uint64_t, session::kLoginResults>, session::LoginOutcomes::transports>
      last_logins_{};
  std::map<std::pair<std::string, std::string>, pool::TrafficTotals> last_;
  std::map<std::pair<std::string, std::string>, pool::PoolCounts> last_counts_;
};

}  // namespace pgmux::admin
