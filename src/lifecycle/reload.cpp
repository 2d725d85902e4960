// Reload: the config file read again, validated, and put in force without dropping a client.
#include "lifecycle/reload.hpp"

#include "lifecycle/fd_limit.hpp"
#include "log.hpp"

namespace pgmux::lifecycle {

namespace {

bool same(const config::Endpoint& a, const config::Endpoint& b) {
  return a.host == b.host && a.port == b.port;
}

}  // namespace

std::vector<std::string> keys_needing_restart(const config::Config& running, const config::Config& next) {
  std::vector<std::string> keys;
  if (!same(running.listen.postgres, next.listen.postgres)) keys.push_back("listen.postgres");
  if (running.listen.http.has_value() != next.listen.http.has_value() ||
      (running.listen.http && !same(*running.listen.http, *next.listen.http)))
    keys.push_back("listen.http");
  if (running.listen.metrics.has_value() != next.listen.metrics.has_value() ||
      (running.listen.metrics && !same(*running.listen.metrics, *next.listen.metrics)))
    keys.push_back("listen.metrics");
  if (running.workers != next.workers) keys.push_back("workers");
  if (running.tcp_defer_accept != next.tcp_defer_accept) keys.push_back("tcp_defer_accept");
  return keys;
}

std::string reload_config(session::Proxy& proxy, const std::string& path) {
  config::Config next;
  try {
    next = config::load_config_file(path);
    for (const std::string& key : keys_needing_restart(*proxy.config(), next))
      log::warning("reload: ", key, " changed; it takes effect at the next restart, the running value stays");
    // The running listeners stay, whatever the file says now, so SHOW CONFIG tells what is in force.
    next.listen = proxy.config()->listen;
    next.workers = proxy.config()->workers;
    next.tcp_defer_accept = proxy.config()->tcp_defer_accept;
    log::Level level;
    log::Format format;
    if (!log::parse_level(next.log_level, level)) throw config::ConfigError("log_level: unknown level");
    if (!log::parse_format(next.log_format, format)) throw config::ConfigError("log_format: unknown format");
    // A bigger max_client_conn or pool needs more descriptors: raised now, or the reload is refused.
    raise_fd_limit_for(next, proxy.workers());
    // TLS certificates and keys named by the new config load inside apply(), before anything is swapped:
    // a bad file leaves the old ones serving.
    proxy.apply(std::move(next));  // throws, changing nothing, on a malformed secret
    log::set_level(level);
    log::set_format(format);
  } catch (const std::exception& e) {
    log::error("reload of ", path, " refused, the running configuration stays: ", e.what());
    return e.what();
  }
  auto now = proxy.config();
  log::info("reloaded ", path, ": ", now->databases.size(), " database(s), ", now->users.size(), " user(s)");
  return {};
}

}  // namespace pgmux::lifecycle
