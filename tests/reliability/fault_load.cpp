// Steady client traffic through pgmux while a test breaks something, with every outcome classified and timed.
#include "fault_load.hpp"

#include <memory>

#include "bounded.hpp"

namespace pgmux::test {

bool is_connection_level(const std::string& sqlstate) {
  return sqlstate.starts_with("08") || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03";
}

FaultLoad::FaultLoad(const Pgmux& mux, int clients, std::chrono::milliseconds request_timeout,
                     bool allow_57014)
    : mux_(mux),
      request_timeout_(request_timeout),
      allow_57014_(allow_57014),
      last_success_(clients),
      client_successes_(clients) {
  for (int id = 0; id < clients; ++id) threads_.emplace_back([this, id] { client(id); });
}

FaultLoad::~FaultLoad() {
  stop();
}

void FaultLoad::stop() {
  stopping_ = true;
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

bool FaultLoad::pause_or_stop() {
  // 50 ms between attempts after an error, so that a server that is down is not hammered.
  for (int i = 0; i < 5 && !stopping_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return !stopping_;
}

void FaultLoad::record_error(const std::string& kind) {
  std::lock_guard lock(mutex_);
  ++errors_[kind];
}

void FaultLoad::note(std::atomic<long long>& longest, Clock::duration took) {
  long long ms = std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
  long long seen = longest.load();
  while (ms > seen && !longest.compare_exchange_weak(seen, ms)) {
  }
}

void FaultLoad::client(int id) {
  std::unique_ptr<Connection> conn;
  for (long n = 1; !stopping_; ++n) {
    if (!conn) {
      auto started = Clock::now();
      conn = std::make_unique<Connection>(mux_.conninfo());  // connect_timeout=10
      if (!conn->ok()) {
        std::string error = conn->error();
        if (Clock::now() - started >= request_timeout_ || error.find("timeout") != std::string::npos) {
          std::lock_guard lock(mutex_);
          unexpected_.push_back("client " + std::to_string(id) + " login: " + error);
        }
        record_error("connect");
        conn.reset();
        if (!pause_or_stop()) return;
        continue;
      }
    }
    std::vector<std::string> statements;
    if (n % 2)
      statements = {"SELECT " + std::to_string(n)};
    else
      statements = {"BEGIN", "SELECT " + std::to_string(n), "COMMIT"};
    bool failed = false;
    for (const auto& sql : statements) {
      auto started = Clock::now();
      Outcome o = exec_bounded(conn->get(), sql, request_timeout_);
      if (o.ok()) {
        note(longest_success_ms_, Clock::now() - started);
        continue;
      }
      note(longest_failure_ms_, Clock::now() - started);
      failed = true;
      bool lost = PQstatus(conn->get()) == CONNECTION_BAD;
      std::string what = "client " + std::to_string(id) + " " + sql + ": [" + o.sqlstate + "] " + o.error;
      bool expected =
          !o.timed_out && (is_connection_level(o.sqlstate) || (allow_57014_ && o.sqlstate == "57014") ||
                           (o.sqlstate.empty() && lost));
      if (!expected) {
        std::lock_guard lock(mutex_);
        unexpected_.push_back(what + (lost ? " (connection lost)" : " (connection open)"));
      }
      record_error(o.timed_out ? "hang" : o.sqlstate.empty() ? "lost without SQLSTATE" : o.sqlstate);
      {
        std::lock_guard lock(mutex_);
        auto ms = [](Clock::duration d) {
          return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
        };
        failures_.push_back({ms(Clock::now() - started_), ms(Clock::now() - started), o.sqlstate, what});
      }
      break;
    }
    if (failed) {
      conn.reset();
      if (!pause_or_stop()) return;
      continue;
    }
    ++successes_;
    ++client_successes_[id];
    last_success_[id] = Clock::now().time_since_epoch().count();
  }
}

bool FaultLoad::wait_for_successes(int successes, std::chrono::milliseconds timeout) {
  return wait_until(
      [&] {
        for (auto& c : client_successes_)
          if (c < successes) return false;
        return true;
      },
      timeout);
}

bool FaultLoad::wait_recovered(Clock::time_point since, std::chrono::milliseconds timeout) {
  long long mark = since.time_since_epoch().count();
  return wait_until(
      [&] {
        for (auto& t : last_success_)
          if (t <= mark) return false;
        return true;
      },
      timeout);
}

std::map<std::string, int> FaultLoad::errors_by_kind() const {
  std::lock_guard lock(mutex_);
  return errors_;
}

std::vector<std::string> FaultLoad::unexpected() const {
  std::lock_guard lock(mutex_);
  return unexpected_;
}

std::vector<FaultLoad::Failure> FaultLoad::failures() const {
  std::lock_guard lock(mutex_);
  return failures_;
}

std::string FaultLoad::failure_log() const {
  std::string out;
  for (const Failure& f : failures())
    out += "  t=" + std::to_string(f.at_ms) + " ms, took " + std::to_string(f.took_ms) +
           " ms: " + f.error.substr(0, 200) + "\n";
  return out;
}

std::string FaultLoad::figures() const {
  std::string text = std::to_string(successes_.load()) + " transactions ok; errors:";
  auto errors = errors_by_kind();
  if (errors.empty()) text += " none";
  for (const auto& [kind, count] : errors) text += " " + kind + "=" + std::to_string(count);
  text += "; longest failed request " + std::to_string(longest_failure_ms_.load()) +
          " ms, longest successful " + std::to_string(longest_success_ms_.load()) + " ms";
  auto odd = unexpected();
  text += "; unexpected: " + std::to_string(odd.size());
  for (std::size_t i = 0; i < odd.size() && i < 10; ++i) text += "\n  " + odd[i];
  return text;
}

}  // namespace pgmux::test
