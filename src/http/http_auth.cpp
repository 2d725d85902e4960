// Who an HTTP request is: a configured user proven by password or by an API token.
#include "http/http_auth.hpp"

#include "log.hpp"
#include "pgmux/auth/crypto.hpp"
#include "session/unknown_user.hpp"

namespace pgmux::http {

HttpAuthenticator::HttpAuthenticator(const session::Proxy& proxy) : proxy_(proxy) {}

AuthOutcome HttpAuthenticator::authenticate(const SqlRequest& request) {
  std::shared_ptr<const config::Config> snapshot = proxy_.config();
  const config::Config& config = *snapshot;
  if (request.bearer_token) {
    // Every token of every user is compared, so the time taken says nothing about which one was close.
    const config::UserConfig* owner = nullptr;
    for (const config::UserConfig& user : config.users)
      for (const std::string& token : user.http_tokens)
        if (auth::constant_time_equal(token, *request.bearer_token)) owner = &user;
    if (!owner) return {std::nullopt, {401, "28P01", "invalid bearer token"}};
    if (!request.user.empty() && request.user != owner->name)
      return {std::nullopt,
              {401, "28000", "the bearer token does not belong to user \"" + request.user + "\""}};
    return {HttpIdentity{owner->name, std::nullopt}, {}};
  }

  auto failed = [&] {
    // As for a wire login: one line per failed password.
    log::info("POST /sql: password authentication failed for user=", request.user);
    return AuthOutcome{std::nullopt,
                       {401, "28P01", "password authentication failed for user \"" + request.user + "\""}};
  };
  std::optional<auth::UserSecret> secret = proxy_.user_secret(request.user);
  if (!secret) {
    // The PBKDF2 a listed user's wrong password costs (wrong passwords are never cached): the time taken
    // does not say that the user is missing.
    if (request.password && config.auth_type != config::AuthType::trust)
      session::cleartext_password_matches(request.user, *request.password, nullptr, proxy_.mock_secret());
    return failed();
  }
  // trust: a listed user is enough, as for wire clients; an unchecked password must not reach the pool.
  if (config.auth_type == config::AuthType::trust) return {HttpIdentity{request.user, std::nullopt}, {}};
  if (!request.password) return failed();
  if (!session::check_cleartext_password(proxy_.password_cache(), request.user, *request.password, &*secret,
                                         proxy_.mock_secret()))
    return failed();
  return {HttpIdentity{request.user, request.password}, {}};
}

}  // namespace pgmux::http
