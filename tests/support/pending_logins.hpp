// libpq logins started now and finished later, so a test can leave connections waiting in an accept queue.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "libpq.hpp"

namespace pgmux::test {

class PendingLogins {
 public:
  PendingLogins() = default;
  ~PendingLogins();
  PendingLogins(const PendingLogins&) = delete;
  PendingLogins& operator=(const PendingLogins&) = delete;

  // Starts a login and takes it as far as the startup packet: the TCP handshake is done (by the kernel alone,
  // so the connection waits in a listener's accept queue even if nobody accepts) and the first message sent.
  // False, with the reason in error(), if that fails or takes longer than `timeout`.
  bool start(const std::string& conninfo, std::chrono::milliseconds timeout);
  // Carries every login on, all at once, until each has logged in or failed or `timeout` has passed. Returns
  // how many have logged in.
  int finish(std::chrono::milliseconds timeout);

  std::size_t size() const { return logins_.size(); }
  PGconn* get(std::size_t i) const { return logins_[i].conn; }
  // How each login that did not log in ended: libpq's message, or that it was still waiting.
  std::string summary(std::size_t max = 5) const;
  const std::string& error() const { return error_; }

 private:
  struct Login {
    PGconn* conn = nullptr;
    PostgresPollingStatusType last = PGRES_POLLING_WRITING;  // what to wait for before the next poll
  };
  std::vector<Login> logins_;
  std::string error_;
};

}  // namespace pgmux::test
