// The running proxy's shared state: config, user secrets, pools by (database, user), cancel routing.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "pgmux/auth/secrets.hpp"
#include "pgmux/config/config.hpp"
#include "pool/pool.hpp"
#include "session/cancel_registry.hpp"
#include "session/login_outcomes.hpp"

namespace pgmux::session {

class Proxy {
 public:
  explicit Proxy(config::Config config);

  const config::Config& config() const { return config_; }
  // Worker threads: `workers` from the config, or one per core.
  int workers() const { return workers_; }
  // The parsed secret of a configured user, or null.
  const auth::UserSecret* user_secret(const std::string& user) const;
  // Random per-process bytes that make mock SCRAM salts for unknown users unpredictable yet stable.
  const std::string& mock_secret() const { return mock_secret_; }

  // The pool for a client of `database` logged in as `user`; created on first use.
  pool::Pool& pool_for(const config::DatabaseConfig& database, const std::string& user);
  void sweep_pools();
  void close_idle_backends();
  // (database, user) and pool, for the admin console.
  std::vector<std::pair<std::pair<std::string, std::string>, pool::Pool*>> pools();

  // The workers' executors, set once at start-up: the admin console visits each one to list or end the
  // sessions that live there.
  void set_worker_executors(std::vector<asio::any_io_executor> executors) {
    worker_executors_ = std::move(executors);
  }
  const std::vector<asio::any_io_executor>& worker_executors() const { return worker_executors_; }

  // PAUSE and KILL hold a database until RESUME: its pools, and any created meanwhile, stay paused.
  void hold_database(const std::string& name);
  bool release_database(const std::string& name);  // false if it was not held
  std::set<std::string> held_databases();

  CancelRegistry& cancels() { return cancels_; }
  // Set once by SIGTERM: sessions end at their next transaction boundary, /readyz says so.
  bool draining() const { return draining_.load(std::memory_order_acquire); }
  void start_draining() { draining_.store(true, std::memory_order_release); }
  std::atomic<int>& client_count() { return client_count_; }
  // Those of client_count() that came over WebSocket.
  std::atomic<int>& websocket_client_count() { return websocket_client_count_; }
  // POST /sql requests being answered: a drain waits for them as it does for wire clients.
  std::atomic<int>& http_requests_in_flight() { return http_requests_in_flight_; }
  // Of those: waiting for a backend, and holding one (pgmux_clients_waiting / _active, protocol http-sql).
  std::atomic<int>& http_requests_waiting() { return http_requests_waiting_; }
  std::atomic<int>& http_requests_holding() { return http_requests_holding_; }
  // Every finished login attempt of a wire client, by how it ended.
  LoginOutcomes& logins() { return logins_; }

 private:
  const config::Config config_;
  const int workers_;
  std::map<std::string, auth::UserSecret> secrets_;
  std::string mock_secret_;
  std::mutex pools_mutex_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<pool::Pool>> pools_;
  std::set<std::string> held_;  // under pools_mutex_
  std::vector<asio::any_io_executor> worker_executors_;
  CancelRegistry cancels_;
  std::atomic<int> client_count_{0};
  std::atomic<int> websocket_client_count_{0};
  std::atomic<int> http_requests_in_flight_{0};
  std::atomic<int> http_requests_waiting_{0};
  std::atomic<int> http_requests_holding_{0};
  std::atomic<bool> draining_{false};
  LoginOutcomes logins_;
};

}  // namespace pgmux::session
