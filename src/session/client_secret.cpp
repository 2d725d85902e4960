// Where a logging-in user's secret comes from: the config's users, else Postgres through auth_query.
#include "log.hpp"
#include "session/auth_lookup.hpp"
#include "session/client_session.hpp"

namespace pgmux::session {

asio::awaitable<bool> ClientSession::find_secret(LoginState& state, std::optional<auth::UserSecret>& secret) {
  secret = proxy_.user_secret(state.user);
  if (secret) co_return true;
  pool::Pool* auth_pool = proxy_.auth_pool_for(state.database);
  if (!auth_pool) co_return true;  // no auth_user for this database: the user is unknown
  SecretLookup found = co_await look_up_secret(*auth_pool, config_->auth_query, state.user,
                                               config_->pool.server_connect_timeout);
  if (!found.error.empty()) {
    // Nothing about the user: the lookup failed the same way whoever asked.
    state.result = LoginResult::server_unavailable;
    log::warning("auth_query for user=", state.user, " database=", state.database, " from ", logged_peer(),
                 " failed: ", found.error);
    std::string why = "authentication lookup failed (auth_query): " + found.error;
    co_await send_error("FATAL", found.sqlstate, why);
    co_return false;
  }
  secret = found.secret;
  state.looked_up = std::move(found.secret);
  co_return true;
}

}  // namespace pgmux::session
