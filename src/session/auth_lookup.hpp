// auth_query: a user's secret fetched from Postgres on the auth_user's own small pool, as PgBouncer does.
#pragma once

#include <optional>
#include <string>

#include "net/asio.hpp"
#include "pgmux/auth/secrets.hpp"
#include "pool/pool.hpp"

namespace pgmux::session {

struct SecretLookup {
  // The user's secret; nullopt when Postgres has no row for it, or a NULL or unusable password (then the
  // login goes on as for an unknown user).
  std::optional<auth::UserSecret> secret;
  // Set when the lookup itself failed (no server connection, the query failed, no answer in time): what to
  // tell the client.
  std::string sqlstate, error;
};

// Runs `query` with $1 = `user` on a backend of `auth_pool` and reads the second column of its first row,
// all within `timeout`. A backend that did not end the exchange idle is closed, never returned.
asio::awaitable<SecretLookup> look_up_secret(pool::Pool& auth_pool, const std::string& query,
                                             const std::string& user, config::Duration timeout);

}  // namespace pgmux::session
