// pool.query_timeout: a periodic check, on each worker, of the requests its relays have outstanding.
#include "session/query_timeout_sweep.hpp"

#include <algorithm>

#include "session/relay.hpp"

namespace pgmux::session {

namespace {

// A tenth of the timeout, between 10 ms and 250 ms: a query is cut at most that late, and an idle worker
// wakes at most four times a second.
config::Duration sweep_period(config::Duration timeout) {
  return std::clamp(timeout / 10, config::Duration(10), config::Duration(250));
}

asio::awaitable<void> sweep_forever(config::Duration timeout) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  const config::Duration period = sweep_period(timeout);
  for (;;) {
    timer.expires_after(period);
    auto [ec] = co_await timer.async_wait(use_nothrow);
    if (ec) co_return;
    Relay::expire_queries_on_this_thread(pool::Clock::now());
  }
}

}  // namespace

void start_query_timeout_sweep(asio::io_context& io, config::Duration timeout) {
  if (timeout.count() == 0) return;
  asio::co_spawn(io, sweep_forever(timeout), asio::detached);
}

}  // namespace pgmux::session
