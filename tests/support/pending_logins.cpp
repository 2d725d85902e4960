// libpq logins started now and finished later, so a test can leave connections waiting in an accept queue.
#include "pending_logins.hpp"

#include <poll.h>

#include <algorithm>

namespace pgmux::test {

using Clock = std::chrono::steady_clock;

namespace {

bool settled(PostgresPollingStatusType status) {
  return status == PGRES_POLLING_OK || status == PGRES_POLLING_FAILED;
}

int millis_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long>(left, 0, 1000));
}

}  // namespace

PendingLogins::~PendingLogins() {
  for (Login& login : logins_) PQfinish(login.conn);
}

bool PendingLogins::start(const std::string& conninfo, std::chrono::milliseconds timeout) {
  Login& login = logins_.emplace_back();
  login.conn = PQconnectStart(conninfo.c_str());
  if (!login.conn || PQstatus(login.conn) == CONNECTION_BAD) {
    error_ = login.conn ? PQerrorMessage(login.conn) : "PQconnectStart: out of memory";
    return false;
  }
  // libpq answers "wait to read" once it has sent the startup packet and waits for the server's answer.
  auto deadline = Clock::now() + timeout;
  while (login.last == PGRES_POLLING_WRITING) {
    pollfd p{PQsocket(login.conn), POLLOUT, 0};
    if (poll(&p, 1, millis_left(deadline)) == 0 && Clock::now() >= deadline) {
      error_ = "the TCP handshake did not complete within " + std::to_string(timeout.count()) + " ms";
      return false;
    }
    login.last = PQconnectPoll(login.conn);
  }
  if (login.last != PGRES_POLLING_READING) {
    error_ = std::string("login failed before its startup packet: ") + PQerrorMessage(login.conn);
    return false;
  }
  return true;
}

int PendingLogins::finish(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    std::vector<pollfd> waits;
    std::vector<Login*> waiting;
    for (Login& login : logins_) {
      if (settled(login.last)) continue;
      short events = login.last == PGRES_POLLING_READING ? POLLIN : POLLOUT;
      waits.push_back({PQsocket(login.conn), events, 0});
      waiting.push_back(&login);
    }
    if (waiting.empty() || Clock::now() >= deadline) break;
    if (poll(waits.data(), waits.size(), millis_left(deadline)) <= 0) continue;
    for (std::size_t i = 0; i < waits.size(); ++i)
      if (waits[i].revents) waiting[i]->last = PQconnectPoll(waiting[i]->conn);
  }
  return static_cast<int>(std::count_if(logins_.begin(), logins_.end(),
                                        [](const Login& login) { return login.last == PGRES_POLLING_OK; }));
}

std::string PendingLogins::summary(std::size_t max) const {
  std::string out;
  std::size_t shown = 0, failed = 0, waiting = 0;
  for (const Login& login : logins_) {
    if (login.last == PGRES_POLLING_OK) continue;
    bool fail = login.last == PGRES_POLLING_FAILED;
    (fail ? failed : waiting)++;
    if (shown++ < max)
      out += fail ? "\n  failed: " + std::string(PQerrorMessage(login.conn)) : "\n  still waiting for pgmux";
  }
  return std::to_string(failed) + " failed, " + std::to_string(waiting) + " still waiting" + out;
}

}  // namespace pgmux::test
