// The backends of one (database, user): idle ones reused newest first, a bounded total, and a wait queue.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pool/backend.hpp"
#include "pool/traffic.hpp"

namespace pgmux::pool {

class Pool;

// A backend on loan to one client. Move-only. If it is destroyed without release_clean(), the backend is
// closed: a connection in an unknown state can never go back to the pool by forgetting something.
class BackendLease {
 public:
  BackendLease() = default;
  BackendLease(Pool* pool, std::unique_ptr<Backend> backend) : pool_(pool), backend_(std::move(backend)) {}
  BackendLease(BackendLease&& other) noexcept = default;
  BackendLease& operator=(BackendLease&& other) noexcept;
  ~BackendLease() { close(); }

  explicit operator bool() const { return backend_ != nullptr; }
  Backend& operator*() const { return *backend_; }
  Backend* operator->() const { return backend_.get(); }

  void release_clean();  // the backend is idle and reusable by anyone
  void close();          // the backend is dropped; its slot goes to whoever waits

 private:
  Pool* pool_ = nullptr;
  std::unique_ptr<Backend> backend_;
};

struct PoolSettings {
  int max_size = 20;
  int workers = 1;
  config::Duration connect_timeout{15'000};
  config::Duration idle_timeout{600'000};
  config::Duration lifetime{3'600'000};
};

struct AcquireResult {
  BackendLease lease;
  std::string sqlstate, message;  // when !lease
};

struct PoolCounts {
  int clients = 0;  // logged in to this pool
  int idle = 0, active = 0, connecting = 0, waiting = 0;
};

class Pool {
 public:
  Pool(config::DatabaseConfig database, BackendCredentials credentials, PoolSettings settings);
  ~Pool();

  // An idle backend, a new connection if under max_size, or the next one released; `wait_timeout` 0 =
  // forever.
  asio::awaitable<AcquireResult> acquire(config::Duration wait_timeout);
  // The common case without a coroutine frame: an idle, healthy backend, or an empty lease.
  BackendLease try_acquire_idle();

  // The parameters the server reported at its first login (for clients' ParameterStatus), empty until then.
  ServerParameters server_parameters() const;
  // What a client's login taught pgmux about its own user: keys from its SCRAM proof, or its password sent in
  // clear. Either lets pgmux log in to Postgres as that user when the config holds only a verifier or a hash.
  // Ignored when the pool logs in as another (forced) user.
  void learn_from_login(const std::string& user,
                        const std::optional<std::pair<auth::Key256, auth::Key256>>& keys,
                        const std::optional<std::string>& password);

  // Closes idle backends past server_idle_timeout or server_lifetime. Called by the janitor.
  void sweep(Clock::time_point now);
  // Closes every idle backend (shutdown, or Postgres restarted).
  void close_idle();

  // A reload: the pool takes the new size and timeouts at once. If the server address or the credentials
  // changed, backends opened before are closed as they come back and new ones go to the new server.
  // Shrinking closes idle backends beyond the new size now and busy ones as they come back.
  void reconfigure(const config::DatabaseConfig& database, const BackendCredentials& credentials,
                   PoolSettings settings);
  // The database was removed from the config: idle backends close now, busy ones as they come back.
  void retire();
  bool retired() const { return retired_.load(std::memory_order_acquire); }
  int max_size() const;

  PoolCounts counts() const;
  TrafficCounters& traffic() { return traffic_; }
  const TrafficCounters& traffic() const { return traffic_; }
  void client_joined() { clients_.fetch_add(1, std::memory_order_relaxed); }
  void client_left() { clients_.fetch_sub(1, std::memory_order_relaxed); }
  // The database as configured now (a copy: a reload may change it).
  config::DatabaseConfig database() const;
  const std::string& name() const { return name_; }

 private:
  friend class BackendLease;
  struct Waiter;

  void give_back(std::unique_ptr<Backend> backend);
  void discard(std::unique_ptr<Backend> backend);
  // Under mutex_: hands `backend` (or, if null, the right to connect) to the oldest waiter, if any.
  bool hand_to_waiter(std::unique_ptr<Backend>& backend);
  // Under mutex_: lets waiters connect while the pool is under its size.
  void offer_free_slots();
  // Under mutex_: whether a backend coming back must be closed rather than kept (old server, too many, too
  // old, retired pool).
  bool must_close(const Backend& backend, Clock::time_point now) const;
  asio::awaitable<AcquireResult> connect_new();
  static void say_goodbye(std::vector<std::unique_ptr<Backend>>& backends);

  const std::string name_;

  mutable std::mutex mutex_;
  config::DatabaseConfig database_;
  PoolSettings settings_;
  BackendCredentials configured_;   // as the config gave them, to tell whether a reload changed them
  BackendCredentials credentials_;  // the configured ones and what client logins taught
  std::uint64_t generation_ = 0;    // bumped when the server or credentials change
  std::atomic<bool> retired_{false};
  ServerParameters server_parameters_;
  std::vector<std::unique_ptr<Backend>> idle_;  // most recently used last
  int total_ = 0;                               // idle + lent + connecting
  int connecting_ = 0;
  Waiter* waiters_head_ = nullptr;
  Waiter* waiters_tail_ = nullptr;
  int waiting_ = 0;
  std::atomic<int> clients_{0};
  TrafficCounters traffic_;
};

}  // namespace pgmux::pool
