// The running proxy's shared state: the config in force, user secrets, pools by (database, user), cancels.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "net/tls_context.hpp"
#include "pgmux/auth/secrets.hpp"
#include "pgmux/config/config.hpp"
#include "pool/pool.hpp"
#include "session/cancel_registry.hpp"
#include "session/client_limits.hpp"
#include "session/connection_rate.hpp"
#include "session/login_outcomes.hpp"
#include "session/password_cache.hpp"
#include "session/unknown_user.hpp"

namespace pgmux::session {

// What the admin console may ask of the whole process (implemented by lifecycle/, which owns the threads).
class ProcessControl {
 public:
  // Reads the config file again and applies it; the reason it was refused, or empty if it took effect.
  virtual std::string reload() = 0;
  // Drains and exits, as SIGTERM does.
  virtual void shut_down() = 0;

 protected:
  ~ProcessControl() = default;
};

class Proxy {
 public:
  explicit Proxy(config::Config config);

  // The config in force now. Callers keep the snapshot for as long as they use it: a reload swaps in a new
  // one without touching the old, so a session that logged in under it goes on reading what it read.
  std::shared_ptr<const config::Config> config() const;
  // Worker threads: `workers` from the first config, or one per core (a reload cannot change it).
  int workers() const { return workers_; }
  // The parsed secret of a configured user, as of now.
  std::optional<auth::UserSecret> user_secret(const std::string& user) const;
  // How many listed users hold each kind of secret, as of now: an unknown user is challenged like most.
  SecretKinds listed_secret_kinds() const { return snapshot()->kinds; }
  // Random per-process bytes that make mock SCRAM salts for unknown users unpredictable yet stable.
  const std::string& mock_secret() const { return mock_secret_; }
  // Recent successful cleartext password checks (auth_cache_ttl/_size), for wire logins and POST /sql; a
  // reload empties it.
  PasswordCache& password_cache() const { return password_cache_; }
  // The TLS context for clients connecting now (null: tls.cert_file not set). A reload loads the files
  // again, so a renewed certificate is shown to connections accepted after it.
  std::shared_ptr<const net::ServerTls> server_tls() const;

  // Puts `next` in force (throws ConfigError, changing nothing, if a secret in it is malformed or a TLS
  // certificate or key does not load): new logins
  // see it at once; pools take their new size, timeouts and server address; pools of removed databases are
  // retired (their clients are ended at their next transaction boundary by whoever called this).
  void apply(config::Config next);

  // The pool for a client of `database` logged in as `user`, created on first use; null if the database is
  // not in the config (any more).
  pool::Pool* pool_for(const std::string& database, const std::string& user);
  // auth_query: the small pool on which `database`'s auth_user looks up unlisted users; null when the
  // database has no auth_user (or is not in the config).
  pool::Pool* auth_pool_for(const std::string& database);
  void sweep_pools();
  void close_idle_backends();
  // (database, user) and pool, for the admin console. Pools are never destroyed, so the pointers stay valid.
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
  // Set once by SIGTERM or SHUTDOWN: sessions end at their next transaction boundary, /readyz says so.
  bool draining() const { return draining_.load(std::memory_order_acquire); }
  void start_draining() { draining_.store(true, std::memory_order_release); }
  std::atomic<int>& client_count() { return client_count_; }
  // Those of client_count() in the admin console: a drain does not wait for them.
  std::atomic<int>& admin_client_count() { return admin_client_count_; }
  // Those of client_count() that came over WebSocket.
  std::atomic<int>& websocket_client_count() { return websocket_client_count_; }
  // POST /sql requests being answered: a drain waits for them as it does for wire clients.
  std::atomic<int>& http_requests_in_flight() { return http_requests_in_flight_; }
  // Of those: waiting for a backend, and holding one (pgmux_clients_waiting / _active, protocol http-sql).
  std::atomic<int>& http_requests_waiting() { return http_requests_waiting_; }
  std::atomic<int>& http_requests_holding() { return http_requests_holding_; }
  // Every finished login attempt of a wire client, by how it ended.
  LoginOutcomes& logins() { return logins_; }
  // max_db_client_connections and max_user_client_connections.
  ClientLimits& client_limits() { return client_limits_; }
  // client_connection_rate_per_ip.
  ConnectionRateLimiter& connection_rate() { return connection_rate_; }

  void set_control(ProcessControl* control) { control_ = control; }
  ProcessControl* control() const { return control_; }

 private:
  // One config and the secrets parsed from it: swapped together.
  struct Snapshot {
    std::shared_ptr<const config::Config> config;
    std::map<std::string, auth::UserSecret> secrets;
    SecretKinds kinds;
    std::shared_ptr<const net::ServerTls> server_tls;
    std::map<std::string, std::shared_ptr<const net::BackendTls>> backend_tls;  // by database, if sslmode
  };
  static std::shared_ptr<const Snapshot> make_snapshot(config::Config config);
  std::shared_ptr<const Snapshot> snapshot() const;
  // Under pools_mutex_: what a pool of (database, user) logs in as and how it behaves under `snapshot`.
  static pool::BackendCredentials credentials_for(const Snapshot& snapshot, const config::DatabaseConfig& db,
                                                  const std::string& user);
  pool::PoolSettings settings_for(const config::Config& config, const config::DatabaseConfig& db) const;
  static pool::BackendCredentials auth_user_credentials(const Snapshot& snapshot,
                                                        const std::string& auth_user);
  pool::PoolSettings auth_pool_settings(const config::Config& config) const;

  mutable std::mutex snapshot_mutex_;
  std::shared_ptr<const Snapshot> snapshot_;
  const int workers_;
  std::string mock_secret_;
  std::mutex pools_mutex_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<pool::Pool>> pools_;
  // auth_query pools by (database, auth_user), apart from the clients' pools (not in SHOW POOLS or the
  // metrics' pool series). Under pools_mutex_; never destroyed either.
  std::map<std::pair<std::string, std::string>, std::unique_ptr<pool::Pool>> auth_pools_;
  std::set<std::string> held_;  // under pools_mutex_
  std::vector<asio::any_io_executor> worker_executors_;
  CancelRegistry cancels_;
  std::atomic<int> client_count_{0};
  std::atomic<int> admin_client_count_{0};
  std::atomic<int> websocket_client_count_{0};
  std::atomic<int> http_requests_in_flight_{0};
  std::atomic<int> http_requests_waiting_{0};
  std::atomic<int> http_requests_holding_{0};
  std::atomic<bool> draining_{false};
  LoginOutcomes logins_;
  ClientLimits client_limits_;
  ConnectionRateLimiter connection_rate_;
  mutable PasswordCache password_cache_;
  ProcessControl* control_ = nullptr;
};

}  // namespace pgmux::session
