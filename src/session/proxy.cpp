// The running proxy's shared state: config, user secrets, pools by (database, user), cancel routing.
#include "session/proxy.hpp"

#include <thread>

#include "pgmux/auth/crypto.hpp"

namespace pgmux::session {

Proxy::Proxy(config::Config config)
    : config_(std::move(config)),
      workers_(config_.workers > 0 ? config_.workers
                                   : std::max(1, static_cast<int>(std::thread::hardware_concurrency()))),
      mock_secret_(auth::random_string(32)) {
  for (const auto& user : config_.users) {
    auto secret = auth::parse_user_secret(user.name, user.password);
    if (!secret) throw config::ConfigError("users." + user.name + ".password: malformed secret");
    secrets_.emplace(user.name, std::move(*secret));
  }
  for (const auto& [name, db] : config_.databases) {
    if (db.password && !auth::parse_user_secret(db.user.value_or(""), *db.password))
      throw config::ConfigError("databases." + name + ".password: malformed secret");
  }
}

const auth::UserSecret* Proxy::user_secret(const std::string& user) const {
  auto it = secrets_.find(user);
  return it == secrets_.end() ? nullptr : &it->second;
}

pool::Pool& Proxy::pool_for(const config::DatabaseConfig& database, const std::string& user) {
  std::lock_guard lock(pools_mutex_);
  auto& slot = pools_[{database.name, user}];
  if (!slot) {
    // Log in to Postgres as the database's forced user if there is one, else as the client's own user.
    pool::BackendCredentials credentials;
    if (database.user) {
      credentials.user = *database.user;
      if (database.password) credentials.secret = auth::parse_user_secret(*database.user, *database.password);
    } else {
      credentials.user = user;
      if (const auth::UserSecret* secret = user_secret(user)) credentials.secret = *secret;
    }
    pool::PoolSettings settings;
    settings.max_size = config_.pool_size_for(database);
    settings.workers = workers_;
    settings.connect_timeout = config_.pool.server_connect_timeout;
    settings.idle_timeout = config_.pool.server_idle_timeout;
    settings.lifetime = config_.pool.server_lifetime;
    slot = std::make_unique<pool::Pool>(database, std::move(credentials), settings);
    if (held_.count(database.name)) slot->pause();
  }
  return *slot;
}

std::vector<std::pair<std::pair<std::string, std::string>, pool::Pool*>> Proxy::pools() {
  std::lock_guard lock(pools_mutex_);
  std::vector<std::pair<std::pair<std::string, std::string>, pool::Pool*>> out;
  for (auto& [key, pool] : pools_) out.emplace_back(key, pool.get());
  return out;
}

void Proxy::hold_database(const std::string& name) {
  std::lock_guard lock(pools_mutex_);
  held_.insert(name);
  for (auto& [key, pool] : pools_)
    if (key.first == name) pool->pause();
}

bool Proxy::release_database(const std::string& name) {
  std::lock_guard lock(pools_mutex_);
  if (!held_.erase(name)) return false;
  for (auto& [key, pool] : pools_)
    if (key.first == name) pool->resume();
  return true;
}

std::set<std::string> Proxy::held_databases() {
  std::lock_guard lock(pools_mutex_);
  return held_;
}

void Proxy::close_idle_backends() {
  std::lock_guard lock(pools_mutex_);
  for (auto& [key, pool] : pools_) pool->close_idle();
}

void Proxy::sweep_pools() {
  auto now = pool::Clock::now();
  std::lock_guard lock(pools_mutex_);
  for (auto& [key, pool] : pools_) pool->sweep(now);
}

}  // namespace pgmux::session
