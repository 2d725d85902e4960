// A relay's place in its pool's queue: no coroutine and no timer of its own while it waits for a backend.
#pragma once

#include "net/asio.hpp"
#include "pool/pool.hpp"

namespace pgmux::session {

class Relay;

// Tickets are recycled per worker, so that waiting does not allocate in steady state (with 1,000 clients on
// a pool of 20, nearly every transaction waits). One timer per worker, set to the earliest deadline of its
// tickets, enforces query_wait_timeout for all of them.
class QueueTicket final : public pool::PoolWaiter {
 public:
  // Queues `relay` in `pool`; null when the pool says to acquire() instead (see Pool::join_queue), or when
  // this thread runs no deadline watch (start_queue_deadline_watch). `wait_timeout` 0 = forever.
  static QueueTicket* join(Relay& relay, pool::Pool& pool, net::Executor home, config::Duration wait_timeout);
  // The ticket `relay` holds on this thread, if it is queued with one.
  static QueueTicket* held_by(const Relay& relay);
  // Back to this thread's spare tickets, once it has left the queue or been woken. Its lease must be empty.
  void recycle();

 private:
  explicit QueueTicket(net::Executor home) : PoolWaiter(home) {}
  void wake() override;  // posts Relay::queue_served to the ticket's worker
  friend struct TicketList;
  Relay* relay_ = nullptr;
  pool::Pool* pool_ = nullptr;
  pool::Clock::time_point deadline_;
  QueueTicket* list_prev_ = nullptr;  // this thread's tickets in use (or spare: list_next_ only)
  QueueTicket* list_next_ = nullptr;
};

// Per worker, for the life of its io_context: the timer that expires queued tickets past their deadline
// (Relay::queue_wait_expired). Without it, relays on that worker wait in acquire()'s coroutine instead.
void start_queue_deadline_watch(asio::io_context& io);

}  // namespace pgmux::session
