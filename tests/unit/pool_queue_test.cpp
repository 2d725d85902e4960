// Unit tests of the pool's queue: which waiter a backend coming back is handed to, with two workers.
#include <catch2/catch.hpp>

#include <deque>

#include "pool/pool.hpp"

using namespace pgmux;

namespace {

struct Waiter final : pool::PoolWaiter {
  Waiter(net::Executor home, std::string name) : PoolWaiter(home), name(std::move(name)) {}
  void wake() override { woken = true; }
  std::string name;
  bool woken = false;
  bool reported = false;  // by give_back_on, once
};

config::DatabaseConfig named(std::string name) {
  config::DatabaseConfig database;
  database.name = std::move(name);
  return database;
}

// Two workers that never run (the pool only compares executors), and a pool of size 0, so that every waiter
// queues and every backend comes from the test. The pool never counted those backends in its total (nothing
// connected them), which a pool of size 0 does not mind: none is closed for being one too many.
struct TwoWorkers {
  asio::io_context a, b;
  pool::Pool pool{named("db"), pool::BackendCredentials{}, pool::PoolSettings{.max_size = 0, .workers = 2}};
  std::deque<Waiter> waiters;  // in queue order; a deque keeps their addresses

  ~TwoWorkers() {
    for (Waiter& waiter : waiters) {
      pool.leave_queue(waiter);      // a waiter must not stay linked past its life
      waiter.lease.release_clean();  // back to the pool's idle list, which closes it
    }
  }

  void queue(asio::io_context& worker, const std::string& name) {
    Waiter& waiter = waiters.emplace_back(worker.get_executor(), name);
    REQUIRE(pool.join_queue(waiter));
  }

  // Queues `prefix`first .. `prefix`last on `worker`.
  void queue_numbered(asio::io_context& worker, const std::string& prefix, int first, int last) {
    for (int i = first; i <= last; ++i) queue(worker, prefix + std::to_string(i));
  }

  // Gives back a backend living on `worker`; the name of the waiter it went to.
  std::string give_back_on(asio::io_context& worker) {
    net::Socket socket(worker.get_executor());
    socket.open(asio::ip::tcp::v4());
    pool::BackendLease lease(&pool, std::make_unique<pool::Backend>(std::move(socket)));
    lease.release_clean();
    for (Waiter& waiter : waiters)
      if (waiter.woken && waiter.lease && !waiter.reported) {
        waiter.reported = true;
        return waiter.name;
      }
    return {};
  }

  // Gives back backends on `worker` one by one, and checks they go to `prefix`first .. `prefix`last in turn.
  void check_served_in_turn(asio::io_context& worker, const std::string& prefix, int first, int last) {
    for (int i = first; i <= last; ++i) CHECK(give_back_on(worker) == prefix + std::to_string(i));
  }
};

}  // namespace

TEST_CASE("a backend coming back goes to the oldest waiter on its own worker", "[pool]") {
  TwoWorkers w;
  for (const char* name : {"b1", "b2"}) w.queue(w.b, name);
  for (const char* name : {"a1", "a2"}) w.queue(w.a, name);
  CHECK(w.give_back_on(w.a) == "a1");
  CHECK(w.give_back_on(w.b) == "b1");
  CHECK(w.give_back_on(w.b) == "b2");
  CHECK(w.give_back_on(w.b) == "a2");  // nobody left on b: the oldest waiter, wherever it is
  CHECK(w.pool.counts().waiting == 0);
}

TEST_CASE("in a short queue no waiter is passed over more than eight times", "[pool]") {
  TwoWorkers w;
  w.queue(w.b, "b1");
  w.queue_numbered(w.a, "a", 1, 10);
  w.check_served_in_turn(w.a, "a", 1, 8);
  CHECK(w.give_back_on(w.a) == "b1");  // its ninth chance: served, and the backend moves to its worker
  CHECK(w.give_back_on(w.a) == "a9");
}

TEST_CASE("in a long queue a waiter is passed over at most a sixteenth of the queue's length", "[pool]") {
  TwoWorkers w;
  w.queue(w.b, "b1");
  w.queue_numbered(w.a, "a", 1, 320);
  // After 18 hand-offs past it, 303 wait: 303 / 16 = 18.
  w.check_served_in_turn(w.a, "a", 1, 18);
  CHECK(w.give_back_on(w.a) == "b1");
}

TEST_CASE("a waiter further down than the first 32 is not looked for", "[pool]") {
  TwoWorkers w;
  w.queue_numbered(w.b, "b", 1, 32);
  w.queue(w.a, "a1");
  CHECK(w.give_back_on(w.a) == "b1");
  CHECK(w.give_back_on(w.a) == "a1");  // now 32nd in the queue
}

TEST_CASE("a waiter passed over counts everyone ahead of it as passed over too", "[pool]") {
  TwoWorkers w;
  for (const char* name : {"b1", "b2"}) w.queue(w.b, name);
  w.queue_numbered(w.a, "a", 1, 12);
  w.check_served_in_turn(w.a, "a", 1, 8);
  CHECK(w.give_back_on(w.a) == "b1");
  CHECK(w.give_back_on(w.a) == "b2");  // passed over 8 times too, behind b1
  CHECK(w.give_back_on(w.a) == "a9");
}

TEST_CASE("a waiter that leaves the queue and joins again starts with no pass-overs", "[pool]") {
  TwoWorkers w;
  w.queue(w.b, "b1");
  w.queue_numbered(w.a, "a", 1, 10);
  w.check_served_in_turn(w.a, "a", 1, 8);
  Waiter& b1 = w.waiters.front();
  REQUIRE(w.pool.leave_queue(b1));  // its wait timed out; the same ticket is used for its next wait
  REQUIRE(w.pool.join_queue(b1));
  w.queue(w.a, "a11");
  CHECK(w.give_back_on(w.a) == "a9");
  CHECK(w.give_back_on(w.a) == "a10");
  CHECK(w.give_back_on(w.a) == "a11");  // b1 is at the head again, passed over once so far
  CHECK(w.give_back_on(w.b) == "b1");
}
