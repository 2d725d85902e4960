// RLIMIT_NOFILE: raised at start to what max_client_conn and the pools need, or a refusal saying what to set.
#pragma once

#include <cstdint>

#include "pgmux/config/config.hpp"

namespace pgmux::lifecycle {

// Descriptors the config may use at once: one per client up to max_client_conn, every backend of every
// possible pool, the listeners, and a margin for logs, cancels and health checks. (A WebSocket client holds
// three: its TCP connection and a socketpair; a deployment serving mostly WebSocket clients needs more.)
// A TLS client holds three as well; with `plaintext_clients`, clients are counted at one each, which is what
// tls.mode allow needs at the least (its clients choose).
std::uint64_t descriptors_needed(const config::Config& config, int workers, bool plaintext_clients = false);

// Raises the soft limit to `needed` if the hard limit allows; otherwise throws std::runtime_error saying
// what to set (ulimit -n, LimitNOFILE=, or a lower max_client_conn).
void raise_fd_limit(std::uint64_t needed);
// The same, but a hard limit between `enough` and `needed` is taken with a warning instead of refused.
void raise_fd_limit(std::uint64_t needed, std::uint64_t enough);
// What start and reload ask for: every client may be TLS unless tls.mode is allow, where the worst case is
// warned about rather than refused (a default max_client_conn of TLS clients is 30,000 descriptors).
void raise_fd_limit_for(const config::Config& config, int workers);

}  // namespace pgmux::lifecycle
