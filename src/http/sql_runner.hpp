// Runs one HTTP request's queries on a leased backend in a single round trip and writes the JSON answer.
#pragma once

#include <string>

#include "http/sql_request.hpp"
#include "net/asio.hpp"
#include "pool/pool.hpp"

namespace pgmux::http {

struct SqlAnswer {
  int status = 200;  // 200, or 400 for an SQL error or an oversized result, 503 if the backend failed
  std::string body;  // the JSON
};

// Sends the whole pipeline (settings if the backend's differ, BEGIN for a batch, statement_timeout, each
// query as Parse/Bind/Describe/Execute, COMMIT, Sync), reads the answer into `answer`, and gives the backend
// back with release_clean() only if it ended idle ('I', after a ROLLBACK if need be); otherwise it is closed.
asio::awaitable<void> run_sql(pool::BackendLease lease, pool::Pool& pool, const SqlRequest& request,
                              std::size_t max_response_size, SqlAnswer& answer);

}  // namespace pgmux::http
