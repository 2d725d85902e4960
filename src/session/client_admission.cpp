// Whether a client may come in at all: its address's connection rate, then the per-database and per-user
// client limits once it has authenticated.
#include "log.hpp"
#include "pgmux/protocol/wire.hpp"
#include "session/client_session.hpp"
#include "session/client_snapshot.hpp"

namespace pgmux::session {

asio::awaitable<bool> ClientSession::admit_connection(LoginState& state) {
  const config::PoolConfig& settings = config_->pool;
  if (settings.client_connection_rate_per_ip <= 0) co_return true;
  std::string address;
  std::uint16_t port = 0;
  split_address(peer(), address, port);
  if (proxy_.connection_rate().admit(address, settings.client_connection_rate_per_ip,
                                     settings.client_connection_burst_per_ip,
                                     ConnectionRateLimiter::Clock::now()))
    co_return true;
  state.result = LoginResult::too_many_clients;
  log::info("login refused: ", logged_peer(), " is over client_connection_rate_per_ip");
  co_await send_error("FATAL", protocol::sqlstate::kTooManyConnections,
                      "too many connection attempts from this address (client_connection_rate_per_ip)");
  co_return false;
}

asio::awaitable<bool> ClientSession::admit_client(LoginState& state, const config::DatabaseConfig& database) {
  // Checked after authentication, as PgBouncer does: an unauthenticated client learns nothing from it.
  auto refusal = proxy_.client_limits().try_join(database.name, state.user, config_->max_db_clients(database),
                                                 config_->max_user_clients(state.user));
  if (refusal == ClientLimits::Refusal::none) {
    limited_database_ = &database;
    user_ = state.user;
    co_return true;
  }
  state.result = LoginResult::too_many_clients;
  // Built before the co_await (GCC 12 would destroy a conditional's temporary twice).
  std::string why =
      refusal == ClientLimits::Refusal::database
          ? "no more connections allowed for database \"" + database.name + "\" (max_db_client_connections)"
          : "no more connections allowed for user \"" + state.user + "\" (max_user_client_connections)";
  log::info("login refused: user=", state.user, " database=", database.name, " from ", logged_peer(), ": ",
            why);
  co_await send_error("FATAL", protocol::sqlstate::kTooManyConnections, why);
  co_return false;
}

}  // namespace pgmux::session
