// Postgres md5 password authentication: "md5" + md5(md5(password + user) + salt), in hex.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "pgmux/auth/secrets.hpp"

namespace pgmux::auth {

using Md5Salt = std::array<std::uint8_t, 4>;

// "md5" + md5_hex(password + user): what Postgres stores for md5 users.
std::string md5_stored_hash(std::string_view user, std::string_view password);

// The PasswordMessage a client sends for AuthenticationMD5Password. `secret` is a plain password or a stored
// "md5..." hash (both are enough to answer).
std::string md5_client_response(std::string_view user, const UserSecret& secret, const Md5Salt& salt);

// Checks a client's md5 response against a plain or md5 secret in constant time. A SCRAM-only secret cannot
// check md5 and returns false.
bool md5_verify(std::string_view user, const UserSecret& secret, const Md5Salt& salt,
                std::string_view response);

}  // namespace pgmux::auth
