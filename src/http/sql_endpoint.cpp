// POST /sql: the Neon serverless driver's HTTP protocol, served from the same pools as wire clients.
#include "http/sql_endpoint.hpp"

#include "http/result_json.hpp"
#include "pgmux/protocol/wire.hpp"

namespace pgmux::http {

namespace {

std::string_view header(const HttpRequest& request, std::string_view name) {
  auto it = request.find(name);
  return it == request.end() ? std::string_view() : std::string_view(it->value());
}

SqlAnswer refusal(const RequestError& error) {
  return SqlAnswer{error.status, error_json(error.sqlstate, error.message)};
}

std::uint64_t microseconds_since(pool::Clock::time_point start) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(pool::Clock::now() - start).count());
}

}  // namespace

SqlEndpoint::SqlEndpoint(session::Proxy& proxy) : proxy_(proxy), authenticator_(proxy) {}

asio::awaitable<SqlAnswer> SqlEndpoint::answer(const HttpRequest& http_request, CredentialMemo* memo) {
  SqlRequestHeaders headers;
  headers.connection_string = header(http_request, "Neon-Connection-String");
  headers.database = header(http_request, "Pgmux-Database");
  headers.authorization = header(http_request, "Authorization");
  headers.array_mode = header(http_request, "Neon-Array-Mode");
  headers.raw_text_output = header(http_request, "Neon-Raw-Text-Output");
  headers.isolation_level = header(http_request, "Neon-Batch-Isolation-Level");
  headers.read_only = header(http_request, "Neon-Batch-Read-Only");
  headers.deferrable = header(http_request, "Neon-Batch-Deferrable");
  headers.statement_timeout = header(http_request, "Pgmux-Statement-Timeout");
  headers.content_type = header(http_request, "Content-Type");

  std::shared_ptr<const config::Config> snapshot = proxy_.config();
  const config::Config& config = *snapshot;
  // Counted for the whole answer, so that a SIGTERM drain lets it finish; once per request, not per message.
  struct InFlight {
    std::atomic<int>& count;
    explicit InFlight(std::atomic<int>& c) : count(c) { count.fetch_add(1, std::memory_order_relaxed); }
    ~InFlight() { count.fetch_sub(1, std::memory_order_relaxed); }
  } in_flight(proxy_.http_requests_in_flight());
  const bool remembered = memo && memo->matches(headers, snapshot);
  ParsedSqlRequest parsed = parse_sql_request(headers, http_request.body(), config.http,
                                              remembered ? &memo->credentials() : nullptr);
  if (!parsed.request) co_return refusal(parsed.error);
  const SqlRequest& request = *parsed.request;

  AuthOutcome auth;
  if (remembered) {
    auth.identity = memo->identity();
  } else {
    auth = authenticator_.authenticate(request);
    if (!auth.identity) co_return refusal(auth.error);
    if (memo) memo->remember(headers, snapshot, request, *auth.identity);
  }
  if (proxy_.draining())
    co_return SqlAnswer{503, error_json(protocol::sqlstate::kAdminShutdown, "pgmux is shutting down")};
  pool::Pool* found = proxy_.pool_for(request.database, auth.identity->user);
  if (!found)
    co_return refusal(
        {400, protocol::sqlstate::kUnknownDatabase, "database \"" + request.database + "\" does not exist"});
  pool::Pool& pool = *found;
  // As for a wire login: the checked password is what lets pgmux log in as this user when the config holds
  // only a SCRAM verifier.
  if (auth.identity->password)
    pool.learn_from_login(auth.identity->user, std::nullopt, auth.identity->password);

  const auto asked = pool::Clock::now();
  const asio::any_io_executor here = co_await asio::this_coro::executor;
  pool::BackendLease lease = pool.try_acquire_idle(here.target<net::Executor>());
  if (!lease) {
    InFlight waiting(proxy_.http_requests_waiting());
    pool::AcquireResult acquired = co_await pool.acquire(config.pool.query_wait_timeout);
    pool.traffic().add_wait_time(microseconds_since(asked));
    if (!acquired.lease)
      co_return SqlAnswer{503, error_json(acquired.sqlstate, "no server connection: " + acquired.message)};
    lease = std::move(acquired.lease);
  }
  pool::move_to(*lease, co_await asio::this_coro::executor);
  pool::unwatch(*lease);  // read through Asio here: the set would report each reply a second time

  const auto lent = pool::Clock::now();
  InFlight holding(proxy_.http_requests_holding());
  SqlAnswer answer;
  co_await run_sql(std::move(lease), pool, request, config.http.max_response_size, answer);
  pool.traffic().add_queries(request.queries.size());
  pool.traffic().add_transactions(1);
  pool.traffic().add_transaction_time(microseconds_since(lent));
  co_return answer;
}

}  // namespace pgmux::http
