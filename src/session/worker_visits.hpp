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
asio::awaitable<std::invoke_result_t<const Visit&>> call_here(const Visit& visit) {
  co_return visit();
}
}  // namespace detail

// One result per worker, in worker order; `visit` must not throw. The caller waits for every visit, so
// `visit` is taken by reference and may capture the caller's locals by reference. (Nothing is copied into a
// coroutine frame by value: GCC 12 may destroy such a copy twice.)
template <class Visit>
asio::awaitable<std::vector<std::invoke_result_t<const Visit&>>> visit_workers(Proxy& proxy,
                                                                               const Visit& visit) {
  std::vector<std::invoke_result_t<const Visit&>> results;
  for (const asio::any_io_executor& worker : proxy.worker_executors())
    results.push_back(co_await asio::co_spawn(worker, detail::call_here(visit), asio::use_awaitable));
  co_return results;
}

}  // namespace pgmux::session
