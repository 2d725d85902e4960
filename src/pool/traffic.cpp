// Traffic counters per pool, one slot per worker thread: the hot path never shares a cache line or takes a
// lock.
#include "pool/traffic.hpp"

namespace pgmux::pool {
namespace {
thread_local int t_worker = 0;
}

int current_worker() {
  return t_worker;
}
void set_current_worker(int index) {
  t_worker = index;
}

std::size_t error_class_index(std::string_view sqlstate) {
  for (std::size_t i = 0; i + 1 < kErrorClasses.size(); ++i)
    if (sqlstate.substr(0, 2) == kErrorClasses[i]) return i;
  return kErrorClasses.size() - 1;
}

TrafficCounters::TrafficCounters(int workers)
    : workers_(workers > 0 ? workers : 1), slots_(new Slot[workers_]) {}

TrafficTotals TrafficCounters::totals() const {
  TrafficTotals t;
  for (int i = 0; i < workers_; ++i) {
    const Slot& s = slots_[i];
    t.transactions += s.transactions.load(std::memory_order_relaxed);
    t.queries += s.queries.load(std::memory_order_relaxed);
    t.bytes_received += s.bytes_received.load(std::memory_order_relaxed);
    t.bytes_sent += s.bytes_sent.load(std::memory_order_relaxed);
    t.transaction_us += s.transaction_us.load(std::memory_order_relaxed);
    t.wait_us += s.wait_us.load(std::memory_order_relaxed);
    t.query_us += s.query_us.load(std::memory_order_relaxed);
    t.lazy_prepares += s.lazy_prepares.load(std::memory_order_relaxed);
    t.statement_evictions += s.statement_evictions.load(std::memory_order_relaxed);
    t.pinned_sessions += s.pinned_sessions.load(std::memory_order_relaxed);
    for (std::size_t e = 0; e < t.errors.size(); ++e)
      t.errors[e] += s.errors[e].load(std::memory_order_relaxed);
    for (std::size_t b = 0; b < t.lent.size(); ++b) {
      t.lent[b] += s.lent[b].load(std::memory_order_relaxed);
      t.waited[b] += s.waited[b].load(std::memory_order_relaxed);
      t.answered[b] += s.answered[b].load(std::memory_order_relaxed);
    }
  }
  return t;
}

}  // namespace pgmux::pool
