// Steady client traffic through pgmux while a test breaks something, with every outcome classified and timed.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pgmux.hpp"

namespace pgmux::test {

// `clients` threads, each with its own connection through pgmux, run short transactions in a loop (a
// single SELECT, or BEGIN / SELECT / COMMIT) and reconnect after an error. Every failed request is sorted by
// SQLSTATE; one that is not a connection-level error (08..., 57P01/02/03, or 57014 when `allow_57014`), and
// any request or login that got no answer within `request_timeout`, is "unexpected".
class FaultLoad {
 public:
  using Clock = std::chrono::steady_clock;

  FaultLoad(const Pgmux& mux, int clients, std::chrono::milliseconds request_timeout,
            bool allow_57014 = false);
  ~FaultLoad();  // stops the clients

  // Every client has succeeded at least `successes` times (warm-up), within `timeout`.
  bool wait_for_successes(int successes, std::chrono::milliseconds timeout);
  // Every client has succeeded after `since`: service is back. False on timeout.
  bool wait_recovered(Clock::time_point since, std::chrono::milliseconds timeout);
  void stop();

  long long successes() const { return successes_; }
  std::map<std::string, int> errors_by_kind() const;  // SQLSTATE (or "connect", "lost") -> count
  std::vector<std::string> unexpected() const;
  // The longest any request waited before failing, and before succeeding.
  std::chrono::milliseconds longest_failure() const { return std::chrono::milliseconds(longest_failure_ms_); }
  std::chrono::milliseconds longest_success() const { return std::chrono::milliseconds(longest_success_ms_); }
  // One line of figures for the test's output.
  std::string figures() const;
  // Every failed request: when (since the load started), how long it took, and the error.
  struct Failure {
    long long at_ms = 0, took_ms = 0;
    std::string sqlstate, error;
  };
  std::vector<Failure> failures() const;
  std::string failure_log() const;

 private:
  void client(int id);
  bool pause_or_stop();  // a short back-off after an error; false once stopping
  void record_error(const std::string& kind);
  void note(std::atomic<long long>& longest, Clock::duration took);

  const Pgmux& mux_;
  const std::chrono::milliseconds request_timeout_;
  const bool allow_57014_;
  std::atomic<bool> stopping_{false};
  std::atomic<long long> successes_{0};
  std::atomic<long long> longest_failure_ms_{0}, longest_success_ms_{0};
  std::vector<std::atomic<long long>> last_success_;  // per client, steady_clock ticks
  std::vector<std::atomic<int>> client_successes_;
  mutable std::mutex mutex_;
  std::map<std::string, int> errors_;
  std::vector<std::string> unexpected_;
  std::vector<Failure> failures_;
  const Clock::time_point started_ = Clock::now();
  std::vector<std::thread> threads_;
};

// Whether an error is one a client must expect when the server goes away: connection exceptions (08) and
// 57P01/57P02/57P03 (shutdown, crash, not accepting connections yet).
bool is_connection_level(const std::string& sqlstate);

}  // namespace pgmux::test
