// Postgres md5 password authentication: computing and checking "md5" + md5(md5(password + user) + salt).
#include "pgmux/auth/md5.hpp"

#include "pgmux/auth/crypto.hpp"

namespace pgmux::auth {
namespace {

// md5_hex(password + user), the 32 hex digits Postgres stores after "md5". Empty for a SCRAM-only secret,
// which holds neither the password nor this hash.
std::string inner_hash(std::string_view user, const UserSecret& secret) {
  switch (secret.kind) {
    case UserSecret::Kind::plain:
      return md5_hex(secret.text + std::string(user));
    case UserSecret::Kind::md5:
      return secret.text.substr(3);
    case UserSecret::Kind::scram:
      break;
  }
  return {};
}

}  // namespace

std::string md5_stored_hash(std::string_view user, std::string_view password) {
  return "md5" + md5_hex(std::string(password) + std::string(user));
}

// Returns "" for a SCRAM-only secret: there is nothing to answer md5 with, and "" never matches a response.
std::string md5_client_response(std::string_view user, const UserSecret& secret, const Md5Salt& salt) {
  const std::string inner = inner_hash(user, secret);
  if (inner.empty()) return {};
  return "md5" + md5_hex(inner + std::string(reinterpret_cast<const char*>(salt.data()), salt.size()));
}

bool md5_verify(std::string_view user, const UserSecret& secret, const Md5Salt& salt,
                std::string_view response) {
  if (secret.kind == UserSecret::Kind::scram) return false;
  return constant_time_equal(md5_client_response(user, secret, salt), response);
}

}  // namespace pgmux::auth
