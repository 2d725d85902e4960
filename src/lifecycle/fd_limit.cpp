// RLIMIT_NOFILE: raised at start to what max_client_conn and the pools need, or a refusal saying what to set.
#include "lifecycle/fd_limit.hpp"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "log.hpp"

namespace pgmux::lifecycle {

std::uint64_t descriptors_needed(const config::Config& config, int workers, bool plaintext_clients) {
  std::uint64_t backends = 0;
  for (const auto& [name, db] : config.databases) {
    // A pool per (database, user): one for a forced user, else up to one per configured user.
    std::uint64_t pools = db.user ? 1 : std::max<std::size_t>(1, config.users.size());
    // A TLS connection is three descriptors: the TCP socket and the two ends of its tunnel's socketpair.
    const std::uint64_t per_backend = db.sslmode == config::SslMode::disable ? 1 : 3;
    backends += pools * static_cast<std::uint64_t>(config.pool_size_for(db)) * per_backend;
  }
  const std::uint64_t per_client = plaintext_clients || config.tls.mode == config::TlsMode::disable ? 1 : 3;
  const std::uint64_t listeners = 2 * static_cast<std::uint64_t>(workers) + 2;
  constexpr std::uint64_t kMargin = 64;
  return static_cast<std::uint64_t>(config.pool.max_client_conn) * per_client + backends + listeners +
         kMargin;
}

void raise_fd_limit(std::uint64_t needed) {
  raise_fd_limit(needed, needed);
}

void raise_fd_limit_for(const config::Config& config, int workers) {
  const std::uint64_t needed = descriptors_needed(config, workers);
  const bool clients_choose = config.tls.mode == config::TlsMode::allow;
  raise_fd_limit(needed, clients_choose ? descriptors_needed(config, workers, true) : needed);
}

void raise_fd_limit(std::uint64_t needed, std::uint64_t enough) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
    throw std::runtime_error(std::string("getrlimit(RLIMIT_NOFILE): ") + std::strerror(errno));
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur >= needed) return;
  if (limit.rlim_cur == RLIM_INFINITY) return;
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < needed && limit.rlim_max >= enough) {
    log::warning("pool.max_client_conn TLS clients would need ", needed,
                 " open files, but the hard limit is ", limit.rlim_max,
                 ": taking that; raise it (ulimit -Hn, LimitNOFILE=) if most clients use TLS");
    needed = limit.rlim_max;
    if (limit.rlim_cur >= needed) return;
  }
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < needed) {
    throw std::runtime_error("pool.max_client_conn and the pool sizes need up to " + std::to_string(needed) +
                             " open files, but the hard limit (RLIMIT_NOFILE) is " +
                             std::to_string(limit.rlim_max) + ": raise it (ulimit -Hn " +
                             std::to_string(needed) + ", systemd LimitNOFILE=" + std::to_string(needed) +
                             ", docker --ulimit nofile=" + std::to_string(needed) +
                             ") or lower pool.max_client_conn");
  }
  const rlim_t before = limit.rlim_cur;
  limit.rlim_cur = needed;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
    throw std::runtime_error(std::string("setrlimit(RLIMIT_NOFILE): ") + std::strerror(errno));
  log::info("raised the open files limit from ", before, " to ", needed, " for pool.max_client_conn");
}

}  // namespace pgmux::lifecycle
