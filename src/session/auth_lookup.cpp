// auth_query: a user's secret fetched from Postgres on the auth_user's own small pool, as PgBouncer does.
#include "session/auth_lookup.hpp"

#include "log.hpp"
#include "net/message_io.hpp"
#include "pgmux/protocol/builders.hpp"
#include "pgmux/protocol/wire.hpp"

namespace pgmux::session {

using namespace asio::experimental::awaitable_operators;
using namespace protocol;

namespace {

constexpr std::uint32_t kMaxReply = 1 << 20;  // a row of a name and a verifier is far smaller

// Parse/Bind/Execute/Sync of the unnamed statement with one text parameter, so the user name is never
// spliced into SQL.
std::string lookup_messages(const std::string& query, const std::string& user) {
  std::string out;
  MessageBuilder(out, 'P').cstr("").cstr(query).u16(0);
  MessageBuilder(out, 'B')
      .cstr("")
      .cstr("")
      .u16(0)
      .u16(1)
      .u32(static_cast<std::uint32_t>(user.size()))
      .bytes(user)
      .u16(0);
  append_execute(out, "");
  append_sync(out);
  return out;
}

// The second column of a DataRow, if present and not NULL.
std::optional<std::string> password_column(std::string_view row) {
  if (row.size() < 2) return std::nullopt;
  const int columns = (static_cast<unsigned char>(row[0]) << 8) | static_cast<unsigned char>(row[1]);
  std::size_t at = 2;
  for (int column = 0; column < columns && column < 2; ++column) {
    if (row.size() < at + 4) return std::nullopt;
    const std::int32_t length = static_cast<std::int32_t>(read_u32(row.data() + at));
    at += 4;
    if (length < 0) {
      if (column == 1) return std::nullopt;
      continue;
    }
    if (row.size() < at + static_cast<std::size_t>(length)) return std::nullopt;
    if (column == 1) return std::string(row.substr(at, static_cast<std::size_t>(length)));
    at += static_cast<std::size_t>(length);
  }
  return std::nullopt;
}

// Writes the query and reads to ReadyForQuery. True when the backend ended idle (reusable).
asio::awaitable<bool> exchange(pool::Backend& backend, const std::string& query, const std::string& user,
                               SecretLookup& out, std::optional<std::string>& password) {
  if (auto ec = co_await net::write_all(backend.socket, lookup_messages(query, user))) {
    out.sqlstate = sqlstate::kConnectionFailure;
    out.error = "the server connection failed: " + ec.message();
    co_return false;
  }
  std::string body;
  bool have_row = false;
  for (;;) {
    char type;
    if (auto ec = co_await net::read_message(backend.socket, type, body, kMaxReply)) {
      out.sqlstate = sqlstate::kConnectionFailure;
      out.error = "the server connection failed: " + ec.message();
      co_return false;
    }
    if (type == 'D' && !have_row) {
      have_row = true;
      password = password_column(body);
    } else if (type == 'E') {
      ErrorFields fields = parse_error_fields(body);
      out.sqlstate = fields.sqlstate.empty() ? sqlstate::kConnectionFailure : fields.sqlstate;
      out.error = "auth_query failed: " + fields.message;
    } else if (type == 'Z') {
      co_return body.size() == 1 && body[0] == 'I';
    }
  }
}

}  // namespace

asio::awaitable<SecretLookup> look_up_secret(pool::Pool& auth_pool, const std::string& query,
                                             const std::string& user, config::Duration timeout) {
  SecretLookup out;
  const auto deadline = pool::Clock::now() + timeout;
  pool::AcquireResult acquired = co_await auth_pool.acquire(timeout);
  if (!acquired.lease) {
    out.sqlstate = acquired.sqlstate;
    out.error = "no server connection for auth_query: " + acquired.message;
    co_return out;
  }
  // Owned here, outside the race below: if the timer wins, the lease closes the backend as it goes.
  pool::BackendLease lease = std::move(acquired.lease);
  auto executor = co_await asio::this_coro::executor;
  pool::move_to(*lease, executor);
  std::optional<std::string> password;
  asio::steady_timer timer(executor, deadline);
  auto outcome = co_await (exchange(*lease, query, user, out, password) || timer.async_wait(use_nothrow));
  if (outcome.index() == 1) {
    out.sqlstate = sqlstate::kConnectionFailure;
    out.error = "auth_query got no answer within server_connect_timeout";
    co_return out;
  }
  // An error that still ended idle (the query itself failed) leaves the backend as clean as a success.
  if (std::get<0>(outcome))
    lease.release_clean();
  else
    lease.close(pool::CloseReason::broken);
  if (!out.error.empty() || !password) co_return out;
  out.secret = auth::parse_user_secret(user, *password);
  if (!out.secret) log::warning("auth_query: the password Postgres holds for user ", user, " is malformed");
  co_return out;
}

}  // namespace pgmux::session
