// A relay's place in its pool's queue: recycled per worker, woken by a post, expired by one timer per worker.
#include "session/queue_ticket.hpp"

#include <algorithm>

#include "session/relay.hpp"

namespace pgmux::session {

using pool::Clock;

// This thread's tickets: those in a queue (doubly linked, for the deadline watch) and the spare ones.
struct TicketList {
  QueueTicket* used = nullptr;
  QueueTicket* spare = nullptr;
  asio::steady_timer* timer = nullptr;                 // the deadline watch's, while it runs on this thread
  Clock::time_point armed = Clock::time_point::max();  // when it fires next

  TicketList() = default;
  TicketList(const TicketList&) = delete;
  TicketList& operator=(const TicketList&) = delete;
  ~TicketList() {
    while (QueueTicket* t = spare) {
      spare = t->list_next_;
      delete t;
    }
  }

  void link(QueueTicket& t) {
    t.list_prev_ = nullptr;
    t.list_next_ = used;
    if (used) used->list_prev_ = &t;
    used = &t;
  }
  void unlink(QueueTicket& t) {
    (t.list_prev_ ? t.list_prev_->list_next_ : used) = t.list_next_;
    if (t.list_next_) t.list_next_->list_prev_ = t.list_prev_;
    t.list_prev_ = t.list_next_ = nullptr;
  }
  // Ends the wait of every ticket past its deadline that is still queued; returns the next deadline.
  Clock::time_point expire(Clock::time_point now) {
    Clock::time_point next = Clock::time_point::max();
    for (QueueTicket* t = used; t;) {
      QueueTicket* later = t->list_next_;
      if (t->deadline_ > now)
        next = std::min(next, t->deadline_);
      else if (t->pool_->leave_queue(*t))
        t->relay_->queue_wait_expired(*t);  // recycles it
      // else: served just now; its wake is on its way
      t = later;
    }
    return next;
  }
};

namespace {

thread_local TicketList t_tickets;

asio::awaitable<void> watch_deadlines() {
  TicketList& list = t_tickets;
  asio::steady_timer timer(co_await asio::this_coro::executor, Clock::time_point::max());
  list.timer = &timer;
  list.armed = Clock::time_point::max();
  // The frame goes when its io_context does, possibly without ever resuming: forget the timer then. That
  // happens on the main thread after the other workers' threads (and their thread_local lists) are gone, so
  // only a list of the destroying thread's own is touched.
  struct Forget {
    TicketList& list;
    ~Forget() {
      if (&list == &t_tickets) list.timer = nullptr;
    }
  } forget{list};
  for (;;) {
    auto [ec] = co_await timer.async_wait(use_nothrow);
    if (ec == asio::error::operation_aborted) continue;  // a ticket with an earlier deadline moved it
    list.armed = list.expire(Clock::now());
    timer.expires_at(list.armed);
  }
}

}  // namespace

QueueTicket* QueueTicket::join(Relay& relay, pool::Pool& pool, net::Executor home,
                               config::Duration wait_timeout) {
  TicketList& list = t_tickets;
  if (!list.timer) return nullptr;
  QueueTicket* t = list.spare;
  if (t) {
    list.spare = t->list_next_;
    t->home = home;
  } else {
    t = new QueueTicket(home);
  }
  t->relay_ = &relay;
  t->pool_ = &pool;
  t->may_connect = t->killed = t->served = false;
  t->deadline_ = wait_timeout.count() > 0 ? Clock::now() + wait_timeout : Clock::time_point::max();
  t->list_prev_ = t->list_next_ = nullptr;
  if (!pool.join_queue(*t)) {
    t->list_next_ = list.spare;
    list.spare = t;
    return nullptr;
  }
  // Served from another thread from here on, it is woken by a post: nothing below races with that.
  list.link(*t);
  if (t->deadline_ < list.armed) {
    list.armed = t->deadline_;
    list.timer->expires_at(list.armed);
  }
  return t;
}

QueueTicket* QueueTicket::held_by(const Relay& relay) {
  for (QueueTicket* t = t_tickets.used; t; t = t->list_next_)
    if (t->relay_ == &relay) return t;
  return nullptr;
}

void QueueTicket::recycle() {
  TicketList& list = t_tickets;
  list.unlink(*this);
  relay_ = nullptr;
  pool_ = nullptr;
  list_next_ = list.spare;
  list.spare = this;
}

void QueueTicket::wake() {
  asio::post(home, [this] { relay_->queue_served(*this); });
}

void start_queue_deadline_watch(asio::io_context& io) {
  asio::co_spawn(io, watch_deadlines(), asio::detached);
}

}  // namespace pgmux::session
