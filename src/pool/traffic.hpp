// Traffic counters and latency histograms per pool, one slot per worker thread: the hot path never shares a
// cache line or takes a lock.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>

namespace pgmux::pool {

// The calling thread's worker number, set once by each worker as it starts (0 on any other thread).
int current_worker();
void set_current_worker(int index);

// Upper bounds of the latency histogram buckets, in microseconds (the last bucket, +Inf, is implicit).
inline constexpr std::array<std::uint64_t, 16> kLatencyBucketsUs = {
    100,    250,     500,     1'000,   2'500,     5'000,     10'000,    25'000,
    50'000, 100'000, 250'000, 500'000, 1'000'000, 2'500'000, 5'000'000, 10'000'000};
using LatencyBuckets = std::array<std::uint64_t, kLatencyBucketsUs.size() + 1>;  // counts, not cumulative

// The SQLSTATE classes errors are counted by; the last slot takes every other class.
inline constexpr std::array<const char*, 18> kErrorClasses = {"08", "0A", "22", "23", "25", "26",
                                                              "28", "2B", "3D", "40", "42", "53",
                                                              "54", "55", "57", "P0", "XX", "other"};
using ErrorCounts = std::array<std::uint64_t, kErrorClasses.size()>;
// The slot of a SQLSTATE's class (its first two characters).
std::size_t error_class_index(std::string_view sqlstate);

struct TrafficTotals {
  std::uint64_t transactions = 0, queries = 0, bytes_received = 0, bytes_sent = 0, transaction_us = 0,
                wait_us = 0, query_us = 0, lazy_prepares = 0, statement_evictions = 0, pinned_sessions = 0;
  // How long backends were lent, how long clients waited for one, how long requests took to be answered.
  LatencyBuckets lent{}, waited{}, answered{};
  ErrorCounts errors{};  // ErrorResponses from servers to clients, by SQLSTATE class
};

class TrafficCounters {
 public:
  explicit TrafficCounters(int workers);

  // Only the owning worker writes its slot, so a relaxed load-add-store is enough: no locked instruction.
  void add_transactions(std::uint64_t n) { bump(slot().transactions, n); }
  void add_queries(std::uint64_t n) { bump(slot().queries, n); }
  void add_received(std::uint64_t n) { bump(slot().bytes_received, n); }
  void add_sent(std::uint64_t n) { bump(slot().bytes_sent, n); }
  // Named prepared statements pgmux prepared on a backend for a client, and closed to stay under the limit.
  void add_lazy_prepare() { bump(slot().lazy_prepares, 1); }
  void add_statement_eviction() { bump(slot().statement_evictions, 1); }
  // Clients kept on one backend for the rest of their session because of state only it holds.
  void add_pinned_session() { bump(slot().pinned_sessions, 1); }
  void add_error(std::size_t class_index) { bump(slot().errors[class_index], 1); }
  void add_transaction_time(std::uint64_t us) {
    Slot& s = slot();
    bump(s.transaction_us, us);
    bump(s.lent[bucket_of(us)], 1);
  }
  void add_wait_time(std::uint64_t us) {
    Slot& s = slot();
    bump(s.wait_us, us);
    bump(s.waited[bucket_of(us)], 1);
  }
  // One request (a Query, or extended-protocol messages up to their Sync) from when pgmux forwarded it to its
  // ReadyForQuery.
  void add_query_time(std::uint64_t us) {
    Slot& s = slot();
    bump(s.query_us, us);
    bump(s.answered[bucket_of(us)], 1);
  }

  TrafficTotals totals() const;  // summed over the workers, for the admin console and metrics

 private:
  struct alignas(64) Slot {
    std::atomic<std::uint64_t> transactions{0}, queries{0}, bytes_received{0}, bytes_sent{0},
        transaction_us{0}, wait_us{0}, query_us{0}, lazy_prepares{0}, statement_evictions{0},
        pinned_sessions{0};
    std::array<std::atomic<std::uint64_t>, kLatencyBucketsUs.size() + 1> lent{}, waited{}, answered{};
    std::array<std::atomic<std::uint64_t>, kErrorClasses.size()> errors{};
  };
  static std::size_t bucket_of(std::uint64_t us) {
    std::size_t i = 0;
    while (i < kLatencyBucketsUs.size() && us > kLatencyBucketsUs[i]) ++i;
    return i;
  }
  static void bump(std::atomic<std::uint64_t>& counter, std::uint64_t n) {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  Slot& slot() { return slots_[current_worker() < workers_ ? current_worker() : 0]; }

  int workers_;
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace pgmux::pool
