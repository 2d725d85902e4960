// Pool exhaustion: thousands of clients on a pool of 5 are served in turn (nobody starves), a client that
// cannot get a backend in time gets query_wait_timeout's error on time, and clients over max_client_conn are
// refused at once with 53300.
#include <algorithm>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <iostream>
#include <mutex>

#include "bounded.hpp"
#include "load.hpp"
#include "pgmux.hpp"
#include "raw_socket.hpp"

using namespace pgmux::test;
using Clock = std::chrono::steady_clock;

namespace {

// Lets every client thread go at once, or gives up after the timeout (a thread that could not log in
// counts as arrived, failed).
class StartLine {
 public:
  explicit StartLine(int count) : left_(count) {}
  bool arrive_and_wait(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    if (--left_ == 0) wake_.notify_all();
    return wake_.wait_for(lock, timeout, [&] { return left_ <= 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  int left_;
};

std::string startup_packet(const std::string& user, const std::string& database) {
  std::string body = be32(196608) + "user" + '\0' + user + '\0' + "database" + '\0' + database + '\0' + '\0';
  return be32(static_cast<std::uint32_t>(body.size() + 4)) + body;
}

}  // namespace

TEST_CASE(
    "2,000 clients on a pool of 5 with slow queries: every client is served in turn, the longest wait "
    "stays within what a first-come-first-served queue allows",
    "[reliability][fairness]") {
  const int clients = 2000;
  const int rounds = long_form() ? 5 : 2;
  const std::string sleep = long_form() ? "0.05" : "0.01";
  constexpr int kPoolSize = 5;
  long fd_limit = raise_fd_limit(3 * clients + 500);
  INFO("open-file limit " << fd_limit);
  REQUIRE(fd_limit >= 2 * clients + 200);
  // trust for the clients (2,000 SCRAM logins would be the test, not the queue); pgmux logs in to Postgres
  // as the "forced" database's user.
  Pgmux mux(TestPostgres::shared(), {.pool_size = kPoolSize,
                                     .max_client_conn = clients + 50,
                                     .auth_type = "trust",
                                     .query_wait_timeout = "120s"});

  std::vector<long long> longest_wait_ms(clients, -1);
  std::vector<int> served(clients, 0);
  Failures failures;
  StartLine start(clients);
  Clock::time_point released{};
  std::mutex released_mutex;
  Clock::time_point finished_at{};
  int not_started = run_on_threads(
      clients,
      [&](int id) {
        Connection c(mux.conninfo("app", "", "forced"));
        bool connected = c.ok();
        if (!connected) failures.add("client " + std::to_string(id) + " login: " + c.error());
        if (!start.arrive_and_wait(120s))
          failures.add("client " + std::to_string(id) + ": start line timed out");
        {
          std::lock_guard lock(released_mutex);
          if (released == Clock::time_point{}) released = Clock::now();
        }
        if (!connected) return;
        for (int round = 0; round < rounds; ++round) {
          auto sent = Clock::now();
          Outcome o = exec_bounded(c.get(), "SELECT pg_sleep(" + sleep + "), " + std::to_string(id), 120s);
          long long waited =
              std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - sent).count();
          if (!o.ok() || PQgetvalue(o.result.get(), 0, 1) != std::to_string(id)) {
            failures.add("client " + std::to_string(id) + " round " + std::to_string(round) + ": " + o.error);
            return;
          }
          longest_wait_ms[id] = std::max(longest_wait_ms[id], waited);
          ++served[id];
        }
        std::lock_guard lock(released_mutex);
        finished_at = std::max(finished_at, Clock::now());
      },
      256 * 1024);

  INFO(failures.summary() << "\n" << mux.log_tail());
  REQUIRE(not_started == 0);
  REQUIRE(failures.list().empty());
  auto elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(finished_at - released).count();
  long long queries = 0;
  for (int n : served) queries += n;
  std::vector<long long> waits = longest_wait_ms;
  std::sort(waits.begin(), waits.end());
  // Throughput measured over the run: with every client always queued, one request waits for the others'
  // requests ahead of it, at most clients - 1 of them: clients / throughput. A queue that let some clients
  // pass others repeatedly would leave the unlucky ones waiting for several such turns or the whole run.
  double per_ms = static_cast<double>(queries) / static_cast<double>(elapsed_ms);
  double fifo_turn_ms = clients / per_ms;
  long long bound_ms = static_cast<long long>(1.5 * fifo_turn_ms) + 1000;
  std::cout << "[fairness] " << clients << " clients x " << rounds << " rounds of pg_sleep(" << sleep
            << ") on a pool of " << kPoolSize << ": " << queries << " queries in " << elapsed_ms << " ms ("
            << static_cast<int>(per_ms * 1000) << "/s); wait per request median " << waits[clients / 2]
            << " ms, p99 " << waits[clients * 99 / 100] << " ms, longest " << waits.back()
            << " ms; a FIFO turn is " << static_cast<long long>(fifo_turn_ms) << " ms, bound " << bound_ms
            << " ms" << std::endl;
  CHECK(queries == static_cast<long long>(clients) * rounds);
  CHECK(waits.back() <= bound_ms);
}

TEST_CASE("query_wait_timeout errors come on time, with 57014, for every waiting client",
          "[reliability][fairness]") {
  constexpr int kWaiters = 20;
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .max_client_conn = 100, .query_wait_timeout = "1s"});
  Connection holder(mux.conninfo());
  REQUIRE(holder.ok());
  holder.value("BEGIN");
  holder.value("SELECT 1");  // the only backend is held by an open transaction
  std::vector<std::unique_ptr<Connection>> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.push_back(std::make_unique<Connection>(mux.conninfo()));
    REQUIRE(waiters.back()->ok());
  }
  std::vector<long long> took(kWaiters);
  std::vector<Outcome> outcomes(kWaiters);
  run_on_threads(kWaiters, [&](int i) {
    auto started = Clock::now();
    outcomes[i] = exec_bounded(waiters[i]->get(), "SELECT 1", 20s);
    took[i] = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  });
  auto [fastest, slowest] = std::minmax_element(took.begin(), took.end());
  std::cout << "[fairness] query_wait_timeout 1s: " << kWaiters << " waiters failed after " << *fastest
            << ".." << *slowest << " ms" << std::endl;
  for (int i = 0; i < kWaiters; ++i) {
    INFO("waiter " << i << " after " << took[i] << " ms: [" << outcomes[i].sqlstate << "] "
                   << outcomes[i].error);
    CHECK_FALSE(outcomes[i].timed_out);
    CHECK(outcomes[i].sqlstate == "57014");
    CHECK(outcomes[i].error.find("query_wait_timeout") != std::string::npos);
    CHECK(took[i] >= 1000);
    CHECK(took[i] <= 1500);
  }
  // The holder was not disturbed and the pool serves again once it commits.
  CHECK(holder.value("SELECT 2") == "2");
  holder.value("COMMIT");
  Connection after(mux.conninfo());
  REQUIRE(after.ok());
  CHECK(after.value("SELECT 3") == "3");
}

TEST_CASE("clients over max_client_conn are refused at once with 53300, the others keep working",
          "[reliability][fairness]") {
  constexpr int kMax = 20, kExtra = 10;
  Pgmux mux(TestPostgres::shared(), {.max_client_conn = kMax, .auth_type = "trust"});
  std::vector<std::unique_ptr<Connection>> admitted;
  for (int i = 0; i < kMax; ++i) {
    admitted.push_back(std::make_unique<Connection>(mux.conninfo("app", "", "forced")));
    REQUIRE(admitted.back()->ok());
  }
  long long slowest = 0;
  for (int i = 0; i < kExtra; ++i) {
    RawSocket raw(mux.port());
    REQUIRE(raw.connected());
    auto started = Clock::now();
    REQUIRE(raw.send_all(startup_packet("app", "forced")));
    std::string received;
    bool closed = raw.read_until_closed(received, 5s);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    slowest = std::max<long long>(slowest, ms);
    INFO("refusal " << i << " after " << ms << " ms: " << received);
    CHECK(closed);
    CHECK(error_response_sqlstate(received) == "53300");
    CHECK(ms < 500);
  }
  std::cout << "[fairness] max_client_conn " << kMax << ": " << kExtra
            << " extra clients refused with 53300, slowest in " << slowest << " ms" << std::endl;
  for (auto& c : admitted) CHECK(c->value("SELECT 1") == "1");
  admitted.pop_back();
  // A slot freed is a slot usable: the session's end is asynchronous, so the retry is bounded.
  CHECK(wait_until([&] { return Connection(mux.conninfo("app", "", "forced")).ok(); }, 5s));
}
