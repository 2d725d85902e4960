// The backends of one (database, user): idle ones reused newest first, a bounded total, and a wait queue.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "pool/backend.hpp"
#include "pool/traffic.hpp"

namespace pgmux::pool {

class Pool;

// Why a server connection was closed, for pgmux_backend_closes_total. A closed list: the series are known.
enum class CloseReason : std::uint8_t {
  idle_timeout,    // server_idle_timeout
  lifetime,        // server_lifetime
  server_closed,   // an idle one the server had closed (or spoke on) meanwhile
  broken,          // its connection failed mid-use, or its replies could not be trusted
  unclean,         // its client left it in an unknown state and cleaning it up failed
  cancel_pending,  // a cancel request may still reach it
  killed,          // KILL in the admin console
  shutdown,        // pgmux stopping
  query_timeout,   // pool.query_timeout: the server did not answer in time
  reload,          // a reload changed its server or credentials, shrank the pool, or removed the database
};
inline constexpr std::array<const char*, 10> kCloseReasonNames = {
    "idle_timeout",   "lifetime", "server_closed", "broken",        "unclean",
    "cancel_pending", "killed",   "shutdown",      "query_timeout", "reload"};
using CloseCounts = std::array<std::uint64_t, kCloseReasonNames.size()>;

// Why a server login failed, for pgmux_backend_connect_failures_total, from the SQLSTATE it ended with: 08
// (no connection, or it broke or timed out), 28 (credentials refused), 53 (server full), 57 (starting or
// stopping), anything else.
inline constexpr std::array<const char*, 5> kConnectFailureNames = {
    "unreachable", "auth_failed", "server_full", "server_unavailable", "other"};
using ConnectFailureCounts = std::array<std::uint64_t, kConnectFailureNames.size()>;
std::size_t connect_failure_index(std::string_view sqlstate);

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
  // The backend is dropped; its slot goes to whoever waits.
  void close(CloseReason reason = CloseReason::unclean);

 private:
  Pool* pool_ = nullptr;
  std::unique_ptr<Backend> backend_;
};

// A client in a pool's queue for a backend. The pool fills in the outcome and unlinks it under its mutex,
// then calls wake(), which must carry on on the waiter's own worker: the caller may be any thread, and still
// holds the pool's mutex.
class PoolWaiter {
 public:
  explicit PoolWaiter(net::Executor home) : home(home) {}
  PoolWaiter(const PoolWaiter&) = delete;
  PoolWaiter& operator=(const PoolWaiter&) = delete;

  BackendLease lease;        // handed over
  bool may_connect = false;  // or: a slot was freed: connect in it (Pool::acquire with holds_slot)
  bool killed = false;       // or: KILL in the admin console: give up
  bool served = false;       // set with any outcome; alone, it means RESUME: try again
  net::Executor home;        // the worker it waits on: a backend living there is handed to it first

 protected:
  ~PoolWaiter() = default;

 private:
  friend class Pool;
  virtual void wake() = 0;
  PoolWaiter* next_ = nullptr;
  PoolWaiter* prev_ = nullptr;
  int passed_over_ = 0;  // times a waiter behind it was served first (see Pool::pick_waiter_for)
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

  // How a wait in the queue ends without a backend, for every kind of waiter.
  static AcquireResult wait_timed_out(bool paused);
  static AcquireResult killed();
};

struct PoolCounts {
  int clients = 0;  // logged in to this pool
  int idle = 0, active = 0, connecting = 0, waiting = 0;
  bool paused = false;  // PAUSE or KILL in the admin console, until RESUME
  // Since the pool was created: server logins that succeeded, those that failed (by SQLSTATE class) and
  // connections closed (by reason). Counted under the pool's mutex, which connecting and closing take anyway.
  std::uint64_t connects = 0;
  ConnectFailureCounts connect_failures{};
  CloseCounts closes{};
};

class Pool {
 public:
  Pool(config::DatabaseConfig database, BackendCredentials credentials, PoolSettings settings);
  ~Pool();

  // An idle backend, a new connection if under max_size, or the next one released; `wait_timeout` 0 =
  // forever. `holds_slot`: a queued waiter was given a free slot (PoolWaiter::may_connect): connect in it
  // first.
  asio::awaitable<AcquireResult> acquire(config::Duration wait_timeout, bool holds_slot = false);
  // The queue without a coroutine frame or a timer, for the relay: when no backend is idle and none may be
  // opened, `waiter` joins the queue (true) and its wake() tells when it is served. False: acquire() instead
  // (a backend came back meanwhile, a connection may be opened, or the pool is paused).
  bool join_queue(PoolWaiter& waiter);
  // Takes a joined waiter out of the queue (it gave up); false if it was served first and its wake() is on
  // its way.
  bool leave_queue(PoolWaiter& waiter);
  // A waiter given a slot (may_connect) that will not connect in it.
  void return_slot();
  bool paused() const;
  // The common case without a coroutine frame: an idle, healthy backend, or an empty lease. The most recently
  // used one living on `here` (the caller's worker) if there is one: taking another worker's moves its socket
  // (five system calls) and wakes nothing faster.
  BackendLease try_acquire_idle(const net::Executor* here = nullptr);

  // The parameters the server reported at its first login (for clients' ParameterStatus), null until then.
  // Shared and immutable: every login reads them, and a copy would cost an allocation per string.
  std::shared_ptr<const ServerParameters> server_parameters() const;
  // The same as tracked settings (interned once, where building them costs a lookup per setting): what a
  // backend is put back to for a client that asks for the server's defaults (POST /sql).
  protocol::ParamSet server_settings() const;
  // What a client's login taught pgmux about its own user: keys from its SCRAM proof, or its password sent in
  // clear. Either lets pgmux log in to Postgres as that user when the config holds only a verifier or a hash.
  // Ignored when the pool logs in as another (forced) user. `looked_up`: the secret auth_query fetched for a
  // user the config does not list (an md5 hash answers Postgres's md5 challenge with it).
  void learn_from_login(const std::string& user,
                        const std::optional<std::pair<auth::Key256, auth::Key256>>& keys,
                        const std::optional<std::string>& password,
                        const std::optional<auth::UserSecret>& looked_up = std::nullopt);

  // Closes idle backends past server_idle_timeout or server_lifetime. Called by the janitor.
  void sweep(Clock::time_point now);
  // Closes every idle backend (shutdown, or Postgres restarted).
  void close_idle(CloseReason reason = CloseReason::shutdown);

  // PAUSE: no new transaction gets a backend (clients queue, bounded by their query_wait_timeout) until
  // resume(); transactions under way finish. kill() also fails the queued clients and closes the idle
  // backends; the clients holding one are the caller's to end.
  void pause();
  void resume();
  void kill();
  // True once no backend is lent or connecting (every one idle or closed); false if `deadline` came first.
  asio::awaitable<bool> wait_until_quiet(Clock::time_point deadline);

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
  // Calls `visit(backend)` for each idle backend, under the pool's lock (for SHOW SERVERS).
  template <class Visit>
  void for_each_idle(Visit&& visit) const {
    std::lock_guard lock(mutex_);
    for (const auto& backend : idle_) visit(*backend);
  }
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
  void link_last(PoolWaiter& waiter);  // under mutex_
  void unlink(PoolWaiter& waiter);     // under mutex_

  void give_back(std::unique_ptr<Backend> backend);
  void discard(std::unique_ptr<Backend> backend, CloseReason reason);
  // Under mutex_: hands `backend` to the waiter pick_waiter_for chooses, or, if null, the right to connect to
  // the oldest waiter; false if nobody waits (or the pool is paused).
  bool hand_to_waiter(std::unique_ptr<Backend>& backend);
  // Under mutex_: which waiter a backend living on `home` goes to (the queue is not empty).
  PoolWaiter* pick_waiter_for(const net::Executor& home);
  // Under mutex_: lets waiters connect while the pool is under its size.
  void offer_free_slots();
  // Under mutex_: whether a backend coming back must be closed rather than kept (old server, too many, too
  // old, retired pool).
  bool must_close(const Backend& backend, Clock::time_point now) const;
  asio::awaitable<AcquireResult> connect_new();
  static void say_goodbye(std::vector<std::unique_ptr<Backend>>& backends);
  // Under mutex_: wakes the wait_until_quiet() callers once nothing is lent or connecting.
  void wake_quiet_watchers();
  void count_close(CloseReason reason, std::uint64_t n = 1) {
    closes_[static_cast<std::size_t>(reason)] += n;
  }

  const std::string name_;

  mutable std::mutex mutex_;
  config::DatabaseConfig database_;
  PoolSettings settings_;
  BackendCredentials configured_;   // as the config gave them, to tell whether a reload changed them
  BackendCredentials credentials_;  // the configured ones and what client logins taught
  std::uint64_t generation_ = 0;    // bumped when the server or credentials change
  std::atomic<bool> retired_{false};
  std::shared_ptr<const ServerParameters> server_parameters_;
  protocol::ParamSet server_settings_;          // server_parameters_, as tracked settings
  std::vector<std::unique_ptr<Backend>> idle_;  // most recently used last
  int total_ = 0;                               // idle + lent + connecting
  int connecting_ = 0;
  PoolWaiter* waiters_head_ = nullptr;
  PoolWaiter* waiters_tail_ = nullptr;
  int waiting_ = 0;
  bool paused_ = false;
  std::vector<std::shared_ptr<asio::steady_timer>> quiet_watchers_;
  std::uint64_t connects_ = 0;
  ConnectFailureCounts connect_failures_{};
  CloseCounts closes_{};
  std::atomic<int> clients_{0};
  TrafficCounters traffic_;
};

}  // namespace pgmux::pool
