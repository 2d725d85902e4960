// Runs a function on every worker thread in turn and gathers the results: how the admin console reads and
// ends sessions that live on other threads, without putting a lock on their path.
#pragma once

#include <type_traits>
#include <vector>

#include "net/asio.hpp"
#include "session/proxy.hpp"

namespace pgmux::session {

namespace detail {
template <class Visit>
asio::awaitable<std::invoke_result_t<Visit&>> call_here(Visit visit) {
  co_return visit();
}
}  // namespace detail

// One result per worker, in worker order. `visit` is copied to each worker; it must not throw.
template <class Visit>
asio::awaitable<std::vector<std::invoke_result_t<Visit&>>> visit_workers(Proxy& proxy, Visit visit) {
  std::vector<std::invoke_result_t<Visit&>> results;
  for (const asio::any_io_executor& worker : proxy.worker_executors())
    results.push_back(co_await asio::co_spawn(worker, detail::call_here(visit), asio::use_awaitable));
  co_return results;
}

}  // namespace pgmux::session
