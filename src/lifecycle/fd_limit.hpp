// RLIMIT_NOFILE: raised at start to what max_client_conn and the pools need, or a refusal saying what to set.
#pragma once

#include <cstdint>

#include "pgmux/config/config.hpp"

namespace pgmux::lifecycle {

// Descriptors the config may use at once: one per client up to max_client_conn, every backend of every
// possible pool, the listeners, and a margin for logs, cancels and health checks. (A WebSocket client holds
// three: its TCP connection and a socketpair; a deployment serving mostly WebSocket clients needs more.)
std::uint64_t descriptors_needed(const config::Config& config, int workers);

// Raises the soft limit to `needed` if the hard limit allows; otherwise throws std::runtime_error saying
// what to set (ulimit -n, LimitNOFILE=, or a lower max_client_conn).
void raise_fd_limit(std::uint64_t needed);

}  // namespace pgmux::lifecycle
