// The backends of one (database, user): idle ones reused newest first, a bounded total, and a wait queue.
#include "pool/pool.hpp"

#include "log.hpp"
#include "pgmux/protocol/builders.hpp"
#include "pgmux/protocol/wire.hpp"

namespace pgmux::pool {

// acquire()'s waiter: a coroutine asleep on a timer on its own executor, woken by cancelling the timer from
// there. Shared ownership keeps the timer alive until that posted cancel has run, even if the waiter has
// already given up.
struct Pool::Waiter final : PoolWaiter {
  explicit Waiter(const asio::any_io_executor& executor)
      : PoolWaiter(net::worker_executor(executor)), timer(executor, asio::steady_timer::time_point::max()) {}
  void wake() override {
    std::shared_ptr<Waiter> keep = std::move(self);
    asio::post(keep->timer.get_executor(), [keep] { keep->timer.cancel(); });
  }
  asio::steady_timer timer;
  std::shared_ptr<Waiter> self;  // the queue's reference while queued
};

AcquireResult AcquireResult::wait_timed_out(bool paused) {
  return {{},
          protocol::sqlstate::kQueryCanceled,
          paused ? "query_wait_timeout: the database is paused (PAUSE in the admin console)"
                 : "query_wait_timeout: no server connection became free in time"};
}

AcquireResult AcquireResult::killed() {
  return {{}, protocol::sqlstate::kAdminShutdown, "database killed (KILL in the admin console)"};
}

bool Pool::paused() const {
  std::lock_guard lock(mutex_);
  return paused_;
}

BackendLease& BackendLease::operator=(BackendLease&& other) noexcept {
  if (this != &other) {
    close();
    pool_ = other.pool_;
    backend_ = std::move(other.backend_);
  }
  return *this;
}

void BackendLease::release_clean() {
  if (backend_) pool_->give_back(std::move(backend_));
}

void BackendLease::close(CloseReason reason) {
  if (backend_) pool_->discard(std::move(backend_), reason);
}

std::size_t connect_failure_index(std::string_view sqlstate) {
  std::string_view cls = sqlstate.substr(0, 2);
  if (cls == "08") return 0;
  if (cls == "28") return 1;
  if (cls == "53") return 2;
  if (cls == "57") return 3;
  return 4;
}

Pool::Pool(config::DatabaseConfig database, BackendCredentials credentials, PoolSettings settings)
    : name_(database.name),
      database_(std::move(database)),
      settings_(settings),
      configured_(credentials),
      credentials_(std::move(credentials)),
      traffic_(settings.workers) {}

Pool::~Pool() = default;

BackendLease Pool::try_acquire_idle(const net::Executor* here) {
  std::unique_lock lock(mutex_);
  if (paused_) return {};
  while (!idle_.empty()) {
    auto pick = std::prev(idle_.end());
    if (here)
      for (auto it = idle_.rbegin(); it != idle_.rend(); ++it)
        if ((*it)->socket.get_executor() == *here) {
          pick = std::prev(it.base());
          break;
        }
    std::unique_ptr<Backend> backend = std::move(*pick);
    idle_.erase(pick);  // keeps the order: the front is the longest idle, for the sweep
    if (looks_healthy(*backend)) return BackendLease(this, std::move(backend));
    // It spoke while idle (a FATAL from a restarting server) or hung up: never reuse it.
    --total_;
    count_close(CloseReason::server_closed);
    lock.unlock();
    log::info("closing an idle server connection to ", name_, " that the server closed");
    backend.reset();
    lock.lock();
  }
  return {};
}

namespace {

// A server that is full (53300), starting or stopping (57P03) or unreachable (08) may take clients again
// soon: such a login is tried again while the client can still wait, as PgBouncer's server_login_retry does.
// A refusal of the credentials is final, and so is a server whose TLS falls short of sslmode (08004).
bool login_worth_retrying(const AcquireResult& failed) {
  return failed.sqlstate == "53300" || failed.sqlstate == "57P03" ||
         (failed.sqlstate.starts_with("08") && failed.sqlstate != "08004");
}
constexpr auto kLoginRetryPause = std::chrono::milliseconds(500);

}  // namespace

asio::awaitable<AcquireResult> Pool::acquire(config::Duration wait_timeout, bool holds_slot) {
  const Clock::time_point deadline =
      wait_timeout.count() > 0 ? Clock::now() + wait_timeout : Clock::time_point::max();
  // Connects a new backend; false when the caller should wait and go round again instead of failing.
  auto connect = [&](AcquireResult& result) -> asio::awaitable<bool> {
    result = co_await connect_new();
    if (result.lease || !login_worth_retrying(result) || Clock::now() + kLoginRetryPause >= deadline)
      co_return true;
    asio::steady_timer pause(co_await asio::this_coro::executor, kLoginRetryPause);
    co_await pause.async_wait(use_nothrow);
    co_return false;
  };
  if (holds_slot) {
    AcquireResult result;
    if (co_await connect(result)) co_return result;
  }
  for (;;) {
    std::shared_ptr<Waiter> waiter;
    {
      const asio::any_io_executor caller = co_await asio::this_coro::executor;
      if (BackendLease idle = try_acquire_idle(caller.target<net::Executor>()))
        co_return AcquireResult{std::move(idle), {}, {}};
      std::unique_lock lock(mutex_);
      if (total_ < settings_.max_size && !paused_) {
        ++total_;
        ++connecting_;
      } else {
        waiter = std::make_shared<Waiter>(co_await asio::this_coro::executor);
        waiter->self = waiter;
        link_last(*waiter);
        if (wait_timeout.count() > 0) waiter->timer.expires_at(deadline);
      }
    }
    if (!waiter) {
      AcquireResult result;
      if (co_await connect(result)) co_return result;
      continue;
    }

    co_await waiter->timer.async_wait(use_nothrow);
    std::unique_lock lock(mutex_);
    if (!waiter->served) {  // timed out: leave the queue
      unlink(*waiter);
      waiter->self.reset();
      co_return AcquireResult::wait_timed_out(paused_);
    }
    if (waiter->killed) co_return AcquireResult::killed();
    if (waiter->lease) co_return AcquireResult{std::move(waiter->lease), {}, {}};
    if (waiter->may_connect) {
      lock.unlock();
      AcquireResult result;
      if (co_await connect(result)) co_return result;
    }
  }
}

asio::awaitable<AcquireResult> Pool::connect_new() {
  BackendCredentials credentials;
  config::DatabaseConfig database;
  config::Duration timeout;
  std::uint64_t generation;
  {
    std::lock_guard lock(mutex_);
    credentials = credentials_;
    database = database_;
    timeout = settings_.connect_timeout;
    generation = generation_;
  }
  BackendLogin login = co_await connect_backend(database, credentials, timeout);
  std::lock_guard lock(mutex_);
  --connecting_;
  if (!login.backend) {
    --total_;
    ++connect_failures_[connect_failure_index(login.sqlstate)];
    offer_free_slots();  // the slot is free again: let the next waiter try
    wake_quiet_watchers();
    log::warning("server connection to ", name_, " failed: ", login.message);
    co_return AcquireResult{{}, std::move(login.sqlstate), std::move(login.message)};
  }
  ++connects_;
  login.backend->generation = generation;
  if (!server_parameters_) {
    server_parameters_ = std::make_shared<const ServerParameters>(std::move(login.parameters));
    server_settings_ = {};
    for (const auto& [name, value] : *server_parameters_) server_settings_.set(name, value);
  }
  co_return AcquireResult{BackendLease(this, std::move(login.backend)), {}, {}};
}

bool Pool::must_close(const Backend& backend, Clock::time_point now) const {
  return retired() || backend.generation != generation_ || total_ > settings_.max_size ||
         (settings_.lifetime.count() > 0 && now - backend.created > settings_.lifetime);
}

void Pool::give_back(std::unique_ptr<Backend> backend) {
  auto now = Clock::now();
  backend->last_used = now;
  std::vector<std::unique_ptr<Backend>> closing;
  {
    std::lock_guard lock(mutex_);
    if (!must_close(*backend, now)) {
      if (!hand_to_waiter(backend)) idle_.push_back(std::move(backend));
      wake_quiet_watchers();
      return;
    }
    --total_;
    bool too_old = settings_.lifetime.count() > 0 && now - backend->created > settings_.lifetime;
    count_close(too_old ? CloseReason::lifetime : CloseReason::reload);
    offer_free_slots();
    wake_quiet_watchers();
    closing.push_back(std::move(backend));
  }
  say_goodbye(closing);
}

void Pool::discard(std::unique_ptr<Backend> backend, CloseReason reason) {
  error_code ignored;
  backend->socket.close(ignored);
  backend.reset();
  std::lock_guard lock(mutex_);
  --total_;
  count_close(reason);
  offer_free_slots();
  wake_quiet_watchers();
}

void Pool::pause() {
  std::lock_guard lock(mutex_);
  paused_ = true;
}

void Pool::resume() {
  std::lock_guard lock(mutex_);
  paused_ = false;
  // Every queued client tries again, in queue order: an idle backend, a new connection, or the queue anew.
  while (PoolWaiter* waiter = waiters_head_) {
    unlink(*waiter);
    waiter->served = true;
    waiter->wake();
  }
}

void Pool::kill() {
  std::vector<std::unique_ptr<Backend>> closing;
  {
    std::lock_guard lock(mutex_);
    paused_ = true;
    while (PoolWaiter* waiter = waiters_head_) {
      unlink(*waiter);
      waiter->served = waiter->killed = true;
      waiter->wake();
    }
    total_ -= static_cast<int>(idle_.size());
    count_close(CloseReason::killed, idle_.size());
    closing.swap(idle_);
  }
  say_goodbye(closing);
}

asio::awaitable<bool> Pool::wait_until_quiet(Clock::time_point deadline) {
  auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor, deadline);
  {
    std::lock_guard lock(mutex_);
    if (total_ == static_cast<int>(idle_.size())) co_return true;
    quiet_watchers_.push_back(timer);
  }
  co_await timer->async_wait(use_nothrow);
  std::lock_guard lock(mutex_);
  std::erase(quiet_watchers_, timer);
  co_return total_ == static_cast<int>(idle_.size());
}

void Pool::wake_quiet_watchers() {
  if (quiet_watchers_.empty() || total_ != static_cast<int>(idle_.size())) return;
  for (auto& timer : quiet_watchers_) asio::post(timer->get_executor(), [timer] { timer->cancel(); });
  quiet_watchers_.clear();
}

std::shared_ptr<const ServerParameters> Pool::server_parameters() const {
  std::lock_guard lock(mutex_);
  return server_parameters_;
}

protocol::ParamSet Pool::server_settings() const {
  std::lock_guard lock(mutex_);
  return server_settings_;
}

void Pool::learn_from_login(const std::string& user,
                            const std::optional<std::pair<auth::Key256, auth::Key256>>& keys,
                            const std::optional<std::string>& password,
                            const std::optional<auth::UserSecret>& looked_up) {
  std::lock_guard lock(mutex_);
  if (user != credentials_.user) return;
  // What Postgres holds now (it may have changed since the last login), unless a password is known.
  if (looked_up && !configured_.secret &&
      !(credentials_.secret && credentials_.secret->kind == auth::UserSecret::Kind::plain))
    credentials_.secret = looked_up;
  if (credentials_.secret && credentials_.secret->kind == auth::UserSecret::Kind::plain) return;
  if (keys) credentials_.scram_keys = keys;
  if (password) credentials_.secret = auth::UserSecret{auth::UserSecret::Kind::plain, *password, {}};
}

void Pool::sweep(Clock::time_point now) {
  std::vector<std::unique_ptr<Backend>> expired;
  {
    std::lock_guard lock(mutex_);
    std::erase_if(idle_, [&](std::unique_ptr<Backend>& b) {
      bool idle_too_long = settings_.idle_timeout.count() > 0 && now - b->last_used > settings_.idle_timeout;
      bool too_old = settings_.lifetime.count() > 0 && now - b->created > settings_.lifetime;
      if (!idle_too_long && !too_old) return false;
      count_close(too_old ? CloseReason::lifetime : CloseReason::idle_timeout);
      expired.push_back(std::move(b));
      return true;
    });
    total_ -= static_cast<int>(expired.size());
  }
  say_goodbye(expired);
}

void Pool::say_goodbye(std::vector<std::unique_ptr<Backend>>& backends) {
  // Terminate, so that Postgres logs a clean exit; sockets without pending operations may be closed from any
  // thread.
  std::string bye;
  protocol::append_terminate(bye);
  for (auto& b : backends) {
    error_code ignored;
    b->socket.write_some(asio::buffer(bye), ignored);
  }
  backends.clear();
}

config::DatabaseConfig Pool::database() const {
  std::lock_guard lock(mutex_);
  return database_;
}

int Pool::max_size() const {
  std::lock_guard lock(mutex_);
  return settings_.max_size;
}

namespace {

bool same_server(const config::DatabaseConfig& a, const config::DatabaseConfig& b) {
  return a.host == b.host && a.port == b.port && a.dbname == b.dbname && a.user == b.user &&
         a.password == b.password && a.sslmode == b.sslmode && a.sslrootcert == b.sslrootcert &&
         a.sslcert == b.sslcert && a.sslkey == b.sslkey;
}

bool same_credentials(const BackendCredentials& a, const BackendCredentials& b) {
  return a.user == b.user && a.secret.has_value() == b.secret.has_value() &&
         (!a.secret || a.secret->text == b.secret->text);
}

}  // namespace

void Pool::reconfigure(const config::DatabaseConfig& database, const BackendCredentials& credentials,
                       PoolSettings settings) {
  std::vector<std::unique_ptr<Backend>> closing;
  {
    std::lock_guard lock(mutex_);
    retired_.store(false, std::memory_order_release);
    if (!same_server(database_, database) || !same_credentials(configured_, credentials)) {
      log::info("pool ", name_, "/", credentials.user, ": server or credentials changed; ",
                "backends opened before are closed as they come back");
      ++generation_;
      configured_ = credentials;
      credentials_ = credentials;
      server_parameters_.reset();
      server_settings_ = {};
    }
    // Reloaded certificate files (same names, new contents) serve the next connects.
    configured_.tls = credentials_.tls = credentials.tls;
    database_ = database;
    settings.workers = settings_.workers;  // the traffic counters were sized for these
    settings_ = settings;
    // Idle backends of an old server, or beyond the new size, go now (newest kept).
    std::erase_if(idle_, [&](std::unique_ptr<Backend>& b) {
      if (b->generation == generation_) return false;
      closing.push_back(std::move(b));
      return true;
    });
    while (total_ - static_cast<int>(closing.size()) > settings_.max_size && !idle_.empty()) {
      closing.push_back(std::move(idle_.front()));
      idle_.erase(idle_.begin());
    }
    total_ -= static_cast<int>(closing.size());
    count_close(CloseReason::reload, closing.size());
    offer_free_slots();  // a bigger pool lets waiters connect at once
    wake_quiet_watchers();
  }
  say_goodbye(closing);
}

void Pool::retire() {
  retired_.store(true, std::memory_order_release);
  close_idle(CloseReason::reload);
}

void Pool::close_idle(CloseReason reason) {
  std::vector<std::unique_ptr<Backend>> closing;
  {
    std::lock_guard lock(mutex_);
    total_ -= static_cast<int>(idle_.size());
    count_close(reason, idle_.size());
    closing.swap(idle_);
  }
  say_goodbye(closing);
}

PoolCounts Pool::counts() const {
  std::lock_guard lock(mutex_);
  return {clients_.load(std::memory_order_relaxed),
          static_cast<int>(idle_.size()),
          total_ - static_cast<int>(idle_.size()) - connecting_,
          connecting_,
          waiting_,
          paused_,
          connects_,
          connect_failures_,
          closes_};
}

}  // namespace pgmux::pool
