// libpq calls bounded by a deadline, so that a test waiting on pgmux fails instead of hanging.
#include "bounded.hpp"

#include <poll.h>

#include <algorithm>

#include "process.hpp"

namespace pgmux::test {

using Clock = std::chrono::steady_clock;

Result next_result(PGconn* conn, Clock::time_point deadline, bool& timed_out) {
  timed_out = false;
  for (;;) {
    if (!PQconsumeInput(conn) || !PQisBusy(conn)) return Result(PQgetResult(conn));
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      return nullptr;
    }
    pollfd p{PQsocket(conn), POLLIN, 0};
    poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 1000)));
  }
}

namespace {

// Collects the results of whatever was just sent, as exec_bounded describes.
Outcome collect(PGconn* conn, const std::string& what, std::chrono::milliseconds timeout) {
  Outcome out;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    Result r = next_result(conn, deadline, out.timed_out);
    if (out.timed_out) {
      out.error = "no answer within " + std::to_string(timeout.count()) + " ms to: " + what;
      return out;
    }
    if (!r) break;
    bool keep_error = out.result && PQresultStatus(out.result.get()) == PGRES_FATAL_ERROR;
    if (!keep_error) out.result = std::move(r);
  }
  if (!out.result) {
    out.error = std::string("no result: ") + PQerrorMessage(conn);
    return out;
  }
  auto status = PQresultStatus(out.result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    out.error = what + ": " + PQresultErrorMessage(out.result.get());
    out.sqlstate = sqlstate_of(out.result.get());
  }
  return out;
}

Outcome send_failed(PGconn* conn) {
  Outcome out;
  out.error = std::string("send failed: ") + PQerrorMessage(conn);
  return out;
}

}  // namespace

Outcome exec_bounded(PGconn* conn, const std::string& sql, std::chrono::milliseconds timeout) {
  if (!PQsendQuery(conn, sql.c_str())) return send_failed(conn);
  return collect(conn, sql, timeout);
}

Outcome prepare_bounded(PGconn* conn, const std::string& name, const std::string& sql,
                        std::chrono::milliseconds timeout) {
  if (!PQsendPrepare(conn, name.c_str(), sql.c_str(), 0, nullptr)) return send_failed(conn);
  return collect(conn, "prepare " + name, timeout);
}

Outcome exec_prepared_bounded(PGconn* conn, const std::string& name, const std::vector<std::string>& params,
                              std::chrono::milliseconds timeout) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  if (!PQsendQueryPrepared(conn, name.c_str(), static_cast<int>(values.size()), values.data(), nullptr,
                           nullptr, 0))
    return send_failed(conn);
  return collect(conn, "execute " + name, timeout);
}

bool wait_until_running(Connection& direct, const std::string& pid, const std::string& query,
                        std::chrono::milliseconds timeout) {
  const std::string sql = "SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid +
                          " AND state = 'active' AND query = '" + query + "'";
  return wait_until([&] { return direct.value(sql) == "1"; }, timeout);
}

}  // namespace pgmux::test
