// The running proxy's shared state: the config in force, user secrets, pools by (database, user), cancels.
#include "session/proxy.hpp"

#include <thread>

#include "pgmux/auth/crypto.hpp"

namespace pgmux::session {

std::shared_ptr<const Proxy::Snapshot> Proxy::make_snapshot(config::Config config) {
  auto snapshot = std::make_shared<Snapshot>();
  for (const auto& user : config.users) {
    auto secret = auth::parse_user_secret(user.name, user.password);
    if (!secret) throw config::ConfigError("users." + user.name + ".password: malformed secret");
    snapshot->secrets.emplace(user.name, std::move(*secret));
  }
  for (const auto& [name, db] : config.databases) {
    if (db.password && !auth::parse_user_secret(db.user.value_or(""), *db.password))
      throw config::ConfigError("databases." + name + ".password: malformed secret");
  }
  snapshot->kinds = count_secret_kinds(snapshot->secrets);
  // Certificates and keys load here, before anything is swapped: a bad file refuses the start or the reload
  // and leaves the running ones serving.
  snapshot->server_tls = net::make_server_tls(config.tls);
  for (const auto& [name, db] : config.databases)
    if (auto tls = net::make_backend_tls(db)) snapshot->backend_tls.emplace(name, std::move(tls));
  snapshot->config = std::make_shared<const config::Config>(std::move(config));
  return snapshot;
}

Proxy::Proxy(config::Config config)
    : snapshot_(make_snapshot(std::move(config))),
      workers_(snapshot_->config->workers > 0
                   ? snapshot_->config->workers
                   : std::max(1, static_cast<int>(std::thread::hardware_concurrency()))),
      mock_secret_(auth::random_string(32)),
      password_cache_(static_cast<std::size_t>(snapshot_->config->auth_cache_size),
                      snapshot_->config->auth_cache_ttl) {}

std::shared_ptr<const Proxy::Snapshot> Proxy::snapshot() const {
  std::lock_guard lock(snapshot_mutex_);
  return snapshot_;
}

std::shared_ptr<const config::Config> Proxy::config() const {
  return snapshot()->config;
}

std::shared_ptr<const net::ServerTls> Proxy::server_tls() const {
  return snapshot()->server_tls;
}

std::optional<auth::UserSecret> Proxy::user_secret(const std::string& user) const {
  auto current = snapshot();
  auto it = current->secrets.find(user);
  if (it == current->secrets.end()) return std::nullopt;
  return it->second;
}

pool::BackendCredentials Proxy::credentials_for(const Snapshot& snapshot, const config::DatabaseConfig& db,
                                                const std::string& user) {
  // Log in to Postgres as the database's forced user if there is one, else as the client's own user.
  pool::BackendCredentials credentials;
  if (db.user) {
    credentials.user = *db.user;
    if (db.password) credentials.secret = auth::parse_user_secret(*db.user, *db.password);
  } else {
    credentials.user = user;
    if (auto it = snapshot.secrets.find(user); it != snapshot.secrets.end()) credentials.secret = it->second;
  }
  if (auto it = snapshot.backend_tls.find(db.name); it != snapshot.backend_tls.end())
    credentials.tls = it->second;
  return credentials;
}

pool::PoolSettings Proxy::settings_for(const config::Config& config, const config::DatabaseConfig& db) const {
  pool::PoolSettings settings;
  settings.max_size = config.pool_size_for(db);
  settings.workers = workers_;
  settings.connect_timeout = config.pool.server_connect_timeout;
  settings.idle_timeout = config.pool.server_idle_timeout;
  settings.lifetime = config.pool.server_lifetime;
  return settings;
}

pool::BackendCredentials Proxy::auth_user_credentials(const Snapshot& snapshot,
                                                      const std::string& auth_user) {
  // Always the auth_user itself, even for a database that forces another backend user.
  pool::BackendCredentials credentials;
  credentials.user = auth_user;
  if (auto it = snapshot.secrets.find(auth_user); it != snapshot.secrets.end())
    credentials.secret = it->second;
  return credentials;
}

pool::PoolSettings Proxy::auth_pool_settings(const config::Config& config) const {
  pool::PoolSettings settings;
  settings.max_size = 2;  // one lookup per login, each a single round trip: a couple of connections suffice
  settings.workers = workers_;
  settings.connect_timeout = config.pool.server_connect_timeout;
  settings.idle_timeout = config.pool.server_idle_timeout;
  settings.lifetime = config.pool.server_lifetime;
  return settings;
}

pool::Pool* Proxy::auth_pool_for(const std::string& database) {
  std::lock_guard lock(pools_mutex_);
  auto current = snapshot();
  auto db = current->config->databases.find(database);
  if (db == current->config->databases.end()) return nullptr;
  const std::optional<std::string>& auth_user = current->config->auth_user_for(db->second);
  if (!auth_user) return nullptr;
  auto& slot = auth_pools_[{database, *auth_user}];
  if (!slot || slot->retired()) {
    auto credentials = auth_user_credentials(*current, *auth_user);
    auto settings = auth_pool_settings(*current->config);
    if (!slot)
      slot = std::make_unique<pool::Pool>(db->second, credentials, settings);
    else
      slot->reconfigure(db->second, credentials, settings);
  }
  return slot.get();
}

pool::Pool* Proxy::pool_for(const std::string& database, const std::string& user) {
  // The snapshot is read under pools_mutex_, which apply() holds while it swaps and walks the pools: a pool
  // is never created from a config that a reload has already replaced.
  std::lock_guard lock(pools_mutex_);
  auto current = snapshot();
  auto db = current->config->databases.find(database);
  if (db == current->config->databases.end()) return nullptr;
  auto& slot = pools_[{database, user}];
  if (!slot) {
    slot = std::make_unique<pool::Pool>(db->second, credentials_for(*current, db->second, user),
                                        settings_for(*current->config, db->second));
    if (held_.count(database)) slot->pause();
  } else if (slot->retired()) {
    // Removed and added back by reloads that raced this login: take the config now in force.
    slot->reconfigure(db->second, credentials_for(*current, db->second, user),
                      settings_for(*current->config, db->second));
  }
  return slot.get();
}

void Proxy::apply(config::Config next) {
  std::shared_ptr<const Snapshot> fresh = make_snapshot(std::move(next));
  // Under pools_mutex_, so that no pool is created from the old snapshot after this walk.
  std::lock_guard lock(pools_mutex_);
  {
    std::lock_guard swap(snapshot_mutex_);
    snapshot_ = fresh;
  }
  const config::Config& config = *fresh->config;
  // A changed password no longer matches its entry anyway (the secret is hashed in); a removed user's, or one
  // now looked up by auth_query, must not linger either.
  password_cache_.reconfigure(static_cast<std::size_t>(config.auth_cache_size), config.auth_cache_ttl);
  for (auto& [key, pool] : pools_) {
    auto db = config.databases.find(key.first);
    if (db == config.databases.end()) {
      pool->retire();
      continue;
    }
    pool->reconfigure(db->second, credentials_for(*fresh, db->second, key.second),
                      settings_for(config, db->second));
  }
  for (auto& [key, pool] : auth_pools_) {
    auto db = config.databases.find(key.first);
    if (db == config.databases.end() || config.auth_user_for(db->second) != key.second) {
      pool->retire();
      continue;
    }
    pool->reconfigure(db->second, auth_user_credentials(*fresh, key.second), auth_pool_settings(config));
  }
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
  for (auto& [key, pool] : auth_pools_) pool->close_idle();
}

void Proxy::sweep_pools() {
  auto now = pool::Clock::now();
  std::lock_guard lock(pools_mutex_);
  for (auto& [key, pool] : pools_) pool->sweep(now);
  for (auto& [key, pool] : auth_pools_) pool->sweep(now);
}

}  // namespace pgmux::session
