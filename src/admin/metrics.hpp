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

#include "pool/traffic.hpp"
#include "session/proxy.hpp"

namespace pgmux::admin {

// Nothing here is touched on the hot path: relays count into per-worker slots, and a scrape sums them.
// Counters advance by the difference since the previous scrape, so they stay monotonic as Prometheus expects.
class Metrics {
 public:
  explicit Metrics(session::Proxy& proxy);
  std::string scrape();  // Prometheus text format
  // One answered POST /sql: its status and how long it took (prometheus-cpp's own atomics, no lock of ours).
  void record_http_sql(int status, double seconds);

 private:
  void update_pools();
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
  prometheus::Gauge& cpu_seconds_;
  prometheus::Family<prometheus::Counter>& logins_;
  std::array<std::array<std::uint64_t, session::kLoginResults>, session::LoginOutcomes::transports>
      last_logins_{};
  std::map<std::pair<std::string, std::string>, pool::TrafficTotals> last_;
};

}  // namespace pgmux::admin
