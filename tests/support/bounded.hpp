// libpq calls bounded by a deadline, so that a test waiting on pgmux fails instead of hanging.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "libpq.hpp"

namespace pgmux::test {

using namespace std::chrono_literals;

// The next result of a connection that has sent something, waiting at most until `deadline`. Returns nullptr
// both when there are no more results and on timeout; `timed_out` tells them apart.
Result next_result(PGconn* conn, std::chrono::steady_clock::time_point deadline, bool& timed_out);

// PQexec with a deadline: the first error result, or else the last result. `error` is empty on success.
struct Outcome {
  Result result;
  std::string error;
  std::string sqlstate;
  bool timed_out = false;
  bool ok() const { return error.empty(); }
  std::string value(int row = 0, int column = 0) const {
    return result && PQntuples(result.get()) > row ? PQgetvalue(result.get(), row, column) : "";
  }
};

Outcome exec_bounded(PGconn* conn, const std::string& sql, std::chrono::milliseconds timeout = 30s);

// The same for the extended protocol: Parse of a named statement, and Bind/Execute of one with text
// parameters.
Outcome prepare_bounded(PGconn* conn, const std::string& name, const std::string& sql,
                        std::chrono::milliseconds timeout = 30s);
Outcome exec_prepared_bounded(PGconn* conn, const std::string& name, const std::vector<std::string>& params,
                              std::chrono::milliseconds timeout = 30s);

// Polls pg_stat_activity through `direct` until backend `pid` runs `query` (it has reached the server, not
// only a socket); false after `timeout`.
bool wait_until_running(Connection& direct, const std::string& pid, const std::string& query,
                        std::chrono::milliseconds timeout = 10s);

// Errors collected on worker threads (Catch2 assertions are not thread-safe) and checked on the main thread.
class Failures {
 public:
  void add(const std::string& what) {
    std::lock_guard lock(mutex_);
    list_.push_back(what);
  }
  std::vector<std::string> list() const {
    std::lock_guard lock(mutex_);
    return list_;
  }
  std::string summary(std::size_t max = 10) const {
    std::lock_guard lock(mutex_);
    std::string s = std::to_string(list_.size()) + " failure(s)";
    for (std::size_t i = 0; i < list_.size() && i < max; ++i) s += "\n  " + list_[i];
    return s;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> list_;
};

}  // namespace pgmux::test
