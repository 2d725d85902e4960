// The pool's queue: who waits for a backend, and which waiter a backend or a freed slot goes to.
#include <algorithm>

#include "pool/pool.hpp"

namespace pgmux::pool {

void Pool::link_last(PoolWaiter& waiter) {
  waiter.passed_over_ = 0;
  waiter.prev_ = waiters_tail_;
  (waiters_tail_ ? waiters_tail_->next_ : waiters_head_) = &waiter;
  waiters_tail_ = &waiter;
  ++waiting_;
}

void Pool::unlink(PoolWaiter& waiter) {
  (waiter.prev_ ? waiter.prev_->next_ : waiters_head_) = waiter.next_;
  (waiter.next_ ? waiter.next_->prev_ : waiters_tail_) = waiter.prev_;
  waiter.next_ = waiter.prev_ = nullptr;
  --waiting_;
}

bool Pool::join_queue(PoolWaiter& waiter) {
  std::lock_guard lock(mutex_);
  if (paused_ || !idle_.empty() || total_ < settings_.max_size) return false;
  link_last(waiter);
  return true;
}

bool Pool::leave_queue(PoolWaiter& waiter) {
  std::lock_guard lock(mutex_);
  if (waiter.served) return false;
  unlink(waiter);
  return true;
}

void Pool::return_slot() {
  std::lock_guard lock(mutex_);
  --total_;
  --connecting_;
  offer_free_slots();
  wake_quiet_watchers();
}

// A backend goes to the oldest waiter on its own worker: waking it crosses no thread, and its socket stays
// where it is (a move costs five system calls: out of the old worker's readiness set and Asio's epoll, into
// the new worker's two, and an ioctl). Fairness bounds it: only the first kLookahead waiters are looked at,
// and nobody is passed over more than max(kMinPassOvers, waiting / kWaitersPerPassOver) times, waiting being
// the queue's length at each hand-off. So nobody is served more than max(8, N / 16) hand-offs later than
// arrival order would serve them, N the longest the queue got while they waited. A tighter bound moves a
// backend each time the two workers' clients drift apart in the queue by more than it, which with 1000
// clients is most of the time (bench/README.md has the figures).
PoolWaiter* Pool::pick_waiter_for(const net::Executor& home) {
  constexpr int kLookahead = 32;
  constexpr int kMinPassOvers = 8;
  constexpr int kWaitersPerPassOver = 16;
  PoolWaiter* head = waiters_head_;
  // The head has been passed over the most: a pick counts a pass-over for everyone ahead of it, leaving the
  // queue keeps the order of the rest, and a waiter joins at the tail with none (link_last).
  if (head->passed_over_ >= std::max(kMinPassOvers, waiting_ / kWaitersPerPassOver)) return head;
  PoolWaiter* pick = head;
  for (int looked = 1; pick->home != home; ++looked) {
    pick = pick->next_;
    if (!pick || looked == kLookahead) return head;
  }
  for (PoolWaiter* ahead = head; ahead != pick; ahead = ahead->next_) ++ahead->passed_over_;
  return pick;
}

bool Pool::hand_to_waiter(std::unique_ptr<Backend>& backend) {
  // Paused: backends stay idle, freed slots stay free until RESUME.
  if (!waiters_head_ || paused_) return false;
  PoolWaiter* waiter = backend ? pick_waiter_for(backend->socket.get_executor()) : waiters_head_;
  unlink(*waiter);
  waiter->served = true;
  if (backend) {
    waiter->lease = BackendLease(this, std::move(backend));
  } else {
    waiter->may_connect = true;  // the waiter connects in place of the connection that went away
    ++total_;
    ++connecting_;
  }
  waiter->wake();
  return true;
}

void Pool::offer_free_slots() {
  std::unique_ptr<Backend> none;
  while (waiters_head_ && total_ < settings_.max_size && hand_to_waiter(none)) {
  }
}

}  // namespace pgmux::pool
