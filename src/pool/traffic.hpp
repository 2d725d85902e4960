// Traffic counters per pool, one slot per worker thread: the hot path never shares a cache line or takes a
// lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace pgmux::pool {

// The calling thread's worker number, set once by each worker as it starts (0 on any other thread).
int current_worker();
void set_current_worker(int index);

struct TrafficTotals {
  std::uint64_t transactions = 0, queries = 0, bytes_received = 0, bytes_sent = 0, transaction_us = 0,
                wait_us = 0;
};

class TrafficCounters {
 public:
  explicit TrafficCounters(int workers);

  // Only the owning worker writes its slot, so a relaxed load-add-store is enough: no locked instruction.
  void add_transactions(std::uint64_t n) { bump(slot().transactions, n); }
  void add_queries(std::uint64_t n) { bump(slot().queries, n); }
  void add_received(std::uint64_t n) { bump(slot().bytes_received, n); }
  void add_sent(std::uint64_t n) { bump(slot().bytes_sent, n); }
  void add_transaction_time(std::uint64_t us) { bump(slot().transaction_us, us); }
  void add_wait_time(std::uint64_t us) { bump(slot().wait_us, us); }

  TrafficTotals totals() const;  // summed over the workers, for the admin console and metrics

 private:
  struct alignas(64) Slot {
    std::atomic<std::uint64_t> transactions{0}, queries{0}, bytes_received{0}, bytes_sent{0},
        transaction_us{0}, wait_us{0};
  };
  static void bump(std::atomic<std::uint64_t>& counter, std::uint64_t n) {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  Slot& slot() { return slots_[current_worker() < workers_ ? current_worker() : 0]; }

  int workers_;
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace pgmux::pool
