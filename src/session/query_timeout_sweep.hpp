// pool.query_timeout: a periodic check, on each worker, of the requests its relays have outstanding.
#pragma once

#include "net/asio.hpp"
#include "pgmux/config/config.hpp"

namespace pgmux::session {

// Starts, on `io` (one worker), a loop that ends every relay on that worker whose backend has owed an answer
// for longer than `timeout`. One timer per worker instead of one per request: the hot path only keeps the
// timestamp it already has. Does nothing when `timeout` is 0.
void start_query_timeout_sweep(asio::io_context& io, config::Duration timeout);

}  // namespace pgmux::session
