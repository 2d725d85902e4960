// The soak: wire clients, POST /sql clients and connection churn together for a long time (30 minutes as
// documented; PGMUX_SOAK_SECONDS sets it), with Postgres restarted and killed along the way. Prints
// transactions, errors by kind, pgmux's RSS and descriptors at every interval. Hidden from the default run.
#include <signal.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <iostream>
#include <map>

#include "bounded.hpp"
#include "fault_load.hpp"
#include "load.hpp"
#include "neon_http.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;
using Clock = std::chrono::steady_clock;

namespace {

std::chrono::seconds soak_duration() {
  const char* value = std::getenv("PGMUX_SOAK_SECONDS");
  return std::chrono::seconds(value && *value ? std::atol(value) : 1800);
}

// Counts by kind, shared by the HTTP and churn threads.
class Tally {
 public:
  void add(const std::string& kind) {
    std::lock_guard lock(mutex_);
    ++counts_[kind];
  }
  std::string text() const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& [kind, n] : counts_) out += " " + kind + "=" + std::to_string(n);
    return out.empty() ? " none" : out;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, long> counts_;
};

}  // namespace

TEST_CASE("soak: wire, HTTP and churn clients for PGMUX_SOAK_SECONDS with Postgres faults along the way",
          "[.soak]") {
  const auto duration = soak_duration();
  const auto interval = std::max<std::chrono::seconds>(5s, duration / 30);
  const auto fault_every = std::max<std::chrono::seconds>(10s, duration / 6);
  raise_fd_limit(4000);
  TestPostgres postgres;
  Pgmux mux(postgres, {.pool_size = 10, .query_wait_timeout = "15s", .http = true});
  std::atomic<bool> stopping{false};
  std::atomic<long> http_ok{0}, churn_ok{0};
  Tally http_errors, churn_errors;
  Failures wrong;  // answers that were not the client's own: never allowed

  FaultLoad wire(mux, 20, 30s);
  std::vector<std::thread> threads;
  for (int id = 0; id < 4; ++id) {
    threads.emplace_back([&, id] {
      std::unique_ptr<HttpConnection> http;
      for (long n = 0; !stopping; ++n) {
        if (!http) http = std::make_unique<HttpConnection>(mux.http_port(), 30s);
        std::string tag = std::to_string(id) + "-" + std::to_string(n);
        HttpReply reply = http->send(neon_call(json::serialize(json::object{
            {"queries", json::array{json::object{{"query", "SELECT $1::text"},
                                                 {"params", json::array{json::value(tag)}}}}}})));
        if (reply.status == 200) {
          if (reply.body.find("\"" + tag + "\"") == std::string::npos)
            wrong.add("HTTP " + tag + " got " + reply.body.substr(0, 200));
          ++http_ok;
          continue;
        }
        json::error_code ec;
        json::value answer = json::parse(reply.body, ec);
        const json::value* code =
            !ec && answer.is_object() ? answer.as_object().if_contains("code") : nullptr;
        http_errors.add(
            std::to_string(reply.status) + "/" +
            (code && code->is_string() ? std::string(code->as_string()) : reply.error.substr(0, 30)));
        if (!reply.keep_alive || reply.status == 0) http.reset();
      }
    });
  }
  for (int id = 0; id < 2; ++id) {
    threads.emplace_back([&, id] {
      for (long n = 0; !stopping; ++n) {
        Connection c(mux.conninfo());
        if (!c.ok()) {
          churn_errors.add("connect");
          continue;
        }
        std::string tag = std::to_string(id * 1'000'000'000L + n);
        Outcome o = exec_bounded(c.get(), "SELECT " + tag, 30s);
        if (o.ok() && o.value() != tag) wrong.add("churn " + tag + " got " + o.value());
        if (o.ok())
          ++churn_ok;
        else
          churn_errors.add(o.timed_out ? "hang" : o.sqlstate.empty() ? "lost" : o.sqlstate);
      }
    });
  }

  const std::vector<std::pair<std::string, std::function<void()>>> faults = {
      {"restart -m fast", [&] { postgres.restart(); }},
      {"SIGKILL of a backend",
       [&] {
         std::string pid = postgres.psql(
             "SELECT pid FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend' "
             "LIMIT 1");
         if (!pid.empty()) kill(std::stoi(pid), SIGKILL);
       }},
      {"SIGKILL of the postmaster, then start",
       [&] {
         pid_t postmaster = postgres.postmaster_pid();
         if (postmaster > 0) kill(postmaster, SIGKILL);
         if (!postgres.start_after_crash(60s)) wrong.add("Postgres did not start again after SIGKILL");
       }},
  };

  pid_t pid = mux.pid();
  const auto started = Clock::now();
  auto next_fault = started + fault_every;
  std::size_t fault_index = 0;
  std::cout << "[soak] " << duration.count() << " s; a fault every " << fault_every.count()
            << " s; figures every " << interval.count() << " s" << std::endl;
  long fds_start = -1, rss_start = -1;
  while (Clock::now() - started < duration) {
    // The sampling pace of the report; nothing waits on it.
    std::this_thread::sleep_for(interval);
    auto now = Clock::now();
    if (fds_start < 0) {
      fds_start = open_fds(pid);
      rss_start = rss_kib(pid);
    }
    std::cout << "[soak] t=" << std::chrono::duration_cast<std::chrono::seconds>(now - started).count()
              << "s wire: " << wire.figures().substr(0, wire.figures().find('\n')) << " | http ok " << http_ok
              << " errors" << http_errors.text() << " | churn ok " << churn_ok << " errors"
              << churn_errors.text() << " | pgmux RSS " << rss_kib(pid) << " KiB, fds " << open_fds(pid)
              << std::endl;
    if (now >= next_fault && now - started < duration - interval) {
      const auto& [name, fault] = faults[fault_index++ % faults.size()];
      std::cout << "[soak] fault: " << name << std::endl;
      fault();
      next_fault = Clock::now() + fault_every;
    }
  }
  stopping = true;
  wire.stop();
  for (auto& t : threads) t.join();
  long fds_end = -1;
  // pgmux closes finished clients asynchronously: the count settles within a few polls.
  wait_until([&] { return (fds_end = open_fds(pid)) <= fds_start + 2; }, 10s);
  std::cout << "[soak] end: wire " << wire.figures() << "\n[soak] http ok " << http_ok << " errors"
            << http_errors.text() << "; churn ok " << churn_ok << " errors" << churn_errors.text()
            << "; pgmux RSS " << rss_start << " -> " << rss_kib(pid) << " KiB, fds " << fds_start << " -> "
            << fds_end << std::endl;
  INFO(wrong.summary() << "\n" << mux.log_tail());
  CHECK(mux.state() == "pgmux is running");
  CHECK(wrong.list().empty());
  CHECK(wire.unexpected().empty());
  CHECK(wire.successes() > 0);
  CHECK(http_ok > 0);
  CHECK(churn_ok > 0);
  CHECK(fds_end <= fds_start + 2);
}
