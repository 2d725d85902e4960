// The Prometheus view of the running proxy, read from the pools' own counters when scraped.
#include "admin/metrics.hpp"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <prometheus/text_serializer.h>

#include "session/relay.hpp"
#include "session/worker_visits.hpp"

namespace pgmux::admin {

using prometheus::BuildCounter;
using prometheus::BuildGauge;

namespace {

const prometheus::Histogram::BucketBoundaries& bucket_bounds() {
  static const prometheus::Histogram::BucketBoundaries bounds = [] {
    prometheus::Histogram::BucketBoundaries b;
    for (std::uint64_t us : pool::kLatencyBucketsUs) b.push_back(us / 1e6);
    return b;
  }();
  return bounds;
}

// Adds what the workers counted since the last scrape.
void observe(prometheus::Histogram& histogram, const pool::LatencyBuckets& now,
             const pool::LatencyBuckets& before, std::uint64_t added_us) {
  std::vector<double> increments(now.size());
  bool any = false;
  for (std::size_t i = 0; i < now.size(); ++i) {
    increments[i] = static_cast<double>(now[i] - before[i]);
    any = any || increments[i] > 0;
  }
  if (any) histogram.ObserveMultiple(increments, added_us / 1e6);
}

}  // namespace

Metrics::Metrics(session::Proxy& proxy)
    : proxy_(proxy),
      clients_(BuildGauge()
                   .Name("pgmux_clients_connected")
                   .Help("Clients by protocol: postgres and websocket connections, http-sql requests being "
                         "answered")
                   .Register(registry_)),
      pool_clients_(BuildGauge()
                        .Name("pgmux_pool_clients")
                        .Help("Clients logged in to a pool (database, user)")
                        .Register(registry_)),
      pool_waiting_(BuildGauge()
                        .Name("pgmux_pool_clients_waiting")
                        .Help("Clients waiting for a backend connection")
                        .Register(registry_)),
      pool_size_(BuildGauge()
                     .Name("pgmux_pool_size")
                     .Help("Backend connections a pool may open, as configured now (a reload changes it)")
                     .Register(registry_)),
      backends_(BuildGauge()
                    .Name("pgmux_pool_backends")
                    .Help("Backend connections, by state (idle, active, connecting)")
                    .Register(registry_)),
      clients_active_(BuildGauge()
                          .Name("pgmux_clients_active")
                          .Help("Clients holding a backend connection, by protocol")
                          .Register(registry_)),
      clients_waiting_(BuildGauge()
                           .Name("pgmux_clients_waiting")
                           .Help("Clients waiting for a backend connection, by protocol")
                           .Register(registry_)),
      pool_paused_(BuildGauge()
                       .Name("pgmux_pool_paused")
                       .Help("1 while the pool's database is held by PAUSE or KILL in the admin console")
                       .Register(registry_)),
      backend_connects_(BuildCounter()
                            .Name("pgmux_backend_connects_total")
                            .Help("Server connections opened (logged in)")
                            .Register(registry_)),
      backend_connect_failures_(BuildCounter()
                                    .Name("pgmux_backend_connect_failures_total")
                                    .Help("Server logins that failed, by reason (unreachable, auth_failed, "
                                          "server_full, server_unavailable, other)")
                                    .Register(registry_)),
      backend_closes_(BuildCounter()
                          .Name("pgmux_backend_closes_total")
                          .Help("Server connections closed, by reason")
                          .Register(registry_)),
      query_seconds_(prometheus::BuildHistogram()
                         .Name("pgmux_query_duration_seconds")
                         .Help("How long a request (a Query, or extended-protocol messages up to their Sync) "
                               "took from pgmux forwarding it to its ReadyForQuery")
                         .Register(registry_)),
      transactions_(BuildCounter()
                        .Name("pgmux_transactions_total")
                        .Help("Transactions (blocks or single statements) completed through pgmux")
                        .Register(registry_)),
      queries_(BuildCounter()
                   .Name("pgmux_queries_total")
                   .Help("Query and Execute messages forwarded")
                   .Register(registry_)),
      lazy_prepares_(BuildCounter()
                         .Name("pgmux_prepared_statements_lazy_total")
                         .Help("Named prepared statements pgmux prepared on a backend a client moved to")
                         .Register(registry_)),
      statement_evictions_(BuildCounter()
                               .Name("pgmux_prepared_statements_evicted_total")
                               .Help("Prepared statements closed on a backend to stay under "
                                     "max_prepared_statements")
                               .Register(registry_)),
      server_errors_(BuildCounter()
                         .Name("pgmux_server_errors_total")
                         .Help("ErrorResponses from servers relayed to clients, by SQLSTATE class (first two "
                               "characters; \"other\" for the rest)")
                         .Register(registry_)),
      pinned_sessions_(
          BuildCounter()
              .Name("pgmux_pinned_sessions_total")
              .Help("Clients kept on one backend until they left, for session state only it holds "
                    "(pool.session_state: pin)")
              .Register(registry_)),
      bytes_received_(BuildCounter()
                          .Name("pgmux_client_bytes_received_total")
                          .Help("Bytes received from clients and forwarded")
                          .Register(registry_)),
      bytes_sent_(BuildCounter()
                      .Name("pgmux_client_bytes_sent_total")
                      .Help("Bytes sent to clients from backends")
                      .Register(registry_)),
      lent_seconds_(prometheus::BuildHistogram()
                        .Name("pgmux_transaction_duration_seconds")
                        .Help("How long a backend was lent for one transaction (transaction mode)")
                        .Register(registry_)),
      wait_seconds_(prometheus::BuildHistogram()
                        .Name("pgmux_pool_wait_seconds")
                        .Help("How long clients waited for a backend when none was idle")
                        .Register(registry_)),
      http_sql_requests_(BuildCounter()
                             .Name("pgmux_http_sql_requests_total")
                             .Help("POST /sql requests answered, by HTTP status code")
                             .Register(registry_)),
      http_sql_seconds_(prometheus::BuildHistogram()
                            .Name("pgmux_http_sql_request_duration_seconds")
                            .Help("Time to answer a POST /sql request, from its last byte to its answer")
                            .Register(registry_)
                            .Add({}, bucket_bounds())),
      resident_bytes_(BuildGauge()
                          .Name("pgmux_process_resident_memory_bytes")
                          .Help("Resident set size")
                          .Register(registry_)
                          .Add({})),
      open_fds_(BuildGauge()
                    .Name("pgmux_process_open_fds")
                    .Help("Open file descriptors")
                    .Register(registry_)
                    .Add({})),
      cpu_seconds_(BuildCounter()
                       .Name("pgmux_process_cpu_seconds_total")
                       .Help("User and system CPU time used")
                       .Register(registry_)
                       .Add({})),
      logins_(BuildCounter()
                  .Name("pgmux_client_logins_total")
                  .Help("Login attempts of Postgres and WebSocket clients, by how they ended (ok or the "
                        "reason for the refusal)")
                  .Register(registry_)) {
  // Every series exists from the start at 0, so rate() sees the first refusal of a kind.
  for (std::size_t t = 0; t < session::LoginOutcomes::transports; ++t)
    for (std::string_view result : session::kLoginResultNames)
      logins_.Add({{"protocol", std::string(session::LoginOutcomes::kTransportNames[t])},
                   {"result", std::string(result)}});
  BuildGauge()
      .Name("pgmux_build_info")
      .Help("Always 1; the version is a label")
      .Register(registry_)
      .Add({{"version", PGMUX_VERSION}})
      .Set(1);
}

asio::awaitable<std::string> Metrics::scrape() {
  ClientStates states = co_await client_states();
  std::lock_guard lock(mutex_);
  update_clients(states);
  update_pools();
  update_process();
  update_logins();
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_.Collect());
  co_return out.str();
}

asio::awaitable<Metrics::ClientStates> Metrics::client_states() {
  // Counted where the sessions live, from the relays' own state: nothing to keep up to date per transaction.
  auto count_here = [] {
    ClientStates here;
    session::Relay::for_each_on_this_thread([&](session::Relay& relay) {
      const int protocol = relay.websocket() ? 1 : 0;
      here.active[protocol] += relay.holds_backend();
      here.waiting[protocol] += relay.waiting_for_backend();
    });
    return here;
  };
  auto per_worker = co_await session::visit_workers(proxy_, count_here);
  ClientStates all;
  for (const ClientStates& s : per_worker) {
    for (std::size_t p = 0; p < all.active.size(); ++p) {
      all.active[p] += s.active[p];
      all.waiting[p] += s.waiting[p];
    }
  }
  all.active[2] = proxy_.http_requests_holding().load(std::memory_order_relaxed);
  all.waiting[2] = proxy_.http_requests_waiting().load(std::memory_order_relaxed);
  co_return all;
}

void Metrics::update_clients(const ClientStates& states) {
  static constexpr const char* kProtocols[] = {"postgres", "websocket", "http-sql"};
  for (std::size_t p = 0; p < states.active.size(); ++p) {
    clients_active_.Add({{"protocol", kProtocols[p]}}).Set(states.active[p]);
    clients_waiting_.Add({{"protocol", kProtocols[p]}}).Set(states.waiting[p]);
  }
}

void Metrics::update_backends(const prometheus::Labels& labels, const pool::PoolCounts& now,
                              const pool::PoolCounts& before) {
  pool_paused_.Add(labels).Set(now.paused ? 1 : 0);
  backend_connects_.Add(labels).Increment(static_cast<double>(now.connects - before.connects));
  for (std::size_t f = 0; f < now.connect_failures.size(); ++f) {
    prometheus::Labels with_reason = labels;
    with_reason["reason"] = pool::kConnectFailureNames[f];
    backend_connect_failures_.Add(with_reason)
        .Increment(static_cast<double>(now.connect_failures[f] - before.connect_failures[f]));
  }
  for (std::size_t r = 0; r < now.closes.size(); ++r) {
    prometheus::Labels with_reason = labels;
    with_reason["reason"] = pool::kCloseReasonNames[r];
    backend_closes_.Add(with_reason).Increment(static_cast<double>(now.closes[r] - before.closes[r]));
  }
}

void Metrics::record_http_sql(int status, double seconds) {
  http_sql_requests_.Add({{"code", std::to_string(status)}}).Increment();
  http_sql_seconds_.Observe(seconds);
}

void Metrics::update_pools() {
  const int websocket = proxy_.websocket_client_count().load(std::memory_order_relaxed);
  clients_.Add({{"protocol", "postgres"}})
      .Set(proxy_.client_count().load(std::memory_order_relaxed) - websocket);
  clients_.Add({{"protocol", "websocket"}}).Set(websocket);
  clients_.Add({{"protocol", "http-sql"}})
      .Set(proxy_.http_requests_in_flight().load(std::memory_order_relaxed));
  for (const auto& [key, pool] : proxy_.pools()) {
    const prometheus::Labels labels{{"database", key.first}, {"user", key.second}};
    pool::PoolCounts c = pool->counts();
    update_backends(labels, c, last_counts_[key]);
    last_counts_[key] = c;
    pool_clients_.Add(labels).Set(c.clients);
    pool_waiting_.Add(labels).Set(c.waiting);
    pool_size_.Add(labels).Set(pool->max_size());
    auto with_state = [&](const char* state) {
      prometheus::Labels l = labels;
      l["state"] = state;
      return l;
    };
    backends_.Add(with_state("idle")).Set(c.idle);
    backends_.Add(with_state("active")).Set(c.active);
    backends_.Add(with_state("connecting")).Set(c.connecting);

    pool::TrafficTotals now = pool->traffic().totals();
    pool::TrafficTotals& before = last_[key];
    transactions_.Add(labels).Increment(static_cast<double>(now.transactions - before.transactions));
    queries_.Add(labels).Increment(static_cast<double>(now.queries - before.queries));
    lazy_prepares_.Add(labels).Increment(static_cast<double>(now.lazy_prepares - before.lazy_prepares));
    statement_evictions_.Add(labels).Increment(
        static_cast<double>(now.statement_evictions - before.statement_evictions));
    pinned_sessions_.Add(labels).Increment(static_cast<double>(now.pinned_sessions - before.pinned_sessions));
    for (std::size_t e = 0; e < now.errors.size(); ++e) {
      if (now.errors[e] == before.errors[e]) continue;  // a series appears once its class has occurred
      prometheus::Labels with_class = labels;
      with_class["class"] = pool::kErrorClasses[e];
      server_errors_.Add(with_class).Increment(static_cast<double>(now.errors[e] - before.errors[e]));
    }
    bytes_received_.Add(labels).Increment(static_cast<double>(now.bytes_received - before.bytes_received));
    bytes_sent_.Add(labels).Increment(static_cast<double>(now.bytes_sent - before.bytes_sent));
    observe(lent_seconds_.Add(labels, bucket_bounds()), now.lent, before.lent,
            now.transaction_us - before.transaction_us);
    observe(wait_seconds_.Add(labels, bucket_bounds()), now.waited, before.waited,
            now.wait_us - before.wait_us);
    observe(query_seconds_.Add(labels, bucket_bounds()), now.answered, before.answered,
            now.query_us - before.query_us);
    before = now;
  }
}

void Metrics::update_logins() {
  for (std::size_t t = 0; t < session::LoginOutcomes::transports; ++t) {
    auto transport = static_cast<session::LoginOutcomes::Transport>(t);
    for (std::size_t r = 0; r < session::kLoginResults; ++r) {
      std::uint64_t now = proxy_.logins().get(transport, static_cast<session::LoginResult>(r));
      if (now == last_logins_[t][r]) continue;
      logins_
          .Add({{"protocol", std::string(session::LoginOutcomes::kTransportNames[t])},
                {"result", std::string(session::kLoginResultNames[r])}})
          .Increment(static_cast<double>(now - last_logins_[t][r]));
      last_logins_[t][r] = now;
    }
  }
}

void Metrics::update_process() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  if (statm >> pages_total >> pages_resident)
    resident_bytes_.Set(static_cast<double>(pages_resident) * sysconf(_SC_PAGESIZE));
  int fds = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (readdir(dir)) ++fds;
    closedir(dir);
    fds -= 3;  // ".", ".." and the directory's own descriptor
  }
  open_fds_.Set(fds);
  std::ifstream stat("/proc/self/stat");
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 1; i <= 15 && stat >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  // A counter, as Prometheus names CPU time: it advances by what was used since the last scrape.
  double used = static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
  if (used > cpu_seconds_.Value()) cpu_seconds_.Increment(used - cpu_seconds_.Value());
}

}  // namespace pgmux::admin
