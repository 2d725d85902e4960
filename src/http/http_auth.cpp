// Who an HTTP request is: a configured user proven by password (checked as wire logins are, with a cache of
// recent successes so that SCRAM's 4096 PBKDF2 rounds are not paid per request) or by an API token.
#include "http/http_auth.hpp"

#include "pgmux/auth/crypto.hpp"
#include "session/unknown_user.hpp"

namespace pgmux::http {

CredentialCache::CredentialCache(std::size_t max_entries, config::Duration ttl)
    : max_entries_(max_entries), ttl_(ttl), hash_key_(auth::random_string(32)) {}

auth::Key256 CredentialCache::digest(std::string_view user, std::string_view password) const {
  std::string message;
  message.reserve(user.size() + 1 + password.size());
  message.append(user).push_back('\0');  // the NUL keeps ("ab","c") and ("a","bc") apart
  message.append(password);
  return auth::hmac_sha256(hash_key_, message);
}

bool CredentialCache::recently_verified(std::string_view user, std::string_view password,
                                        Clock::time_point now) {
  if (max_entries_ == 0) return false;
  auth::Key256 wanted = digest(user, password);
  std::lock_guard lock(mutex_);
  auto it = by_user_.find(std::string(user));
  if (it == by_user_.end() || it->second.expires <= now) return false;
  return auth::constant_time_equal(auth::as_view(it->second.digest), auth::as_view(wanted));
}

void CredentialCache::remember(std::string_view user, std::string_view password, Clock::time_point now) {
  if (max_entries_ == 0) return;
  Entry entry{digest(user, password), now + ttl_};
  std::lock_guard lock(mutex_);
  if (by_user_.size() >= max_entries_ && !by_user_.contains(std::string(user))) {
    std::erase_if(by_user_, [&](const auto& item) { return item.second.expires <= now; });
    // Still full of live entries: forget the one closest to expiring.
    if (by_user_.size() >= max_entries_) {
      auto oldest = by_user_.begin();
      for (auto it = by_user_.begin(); it != by_user_.end(); ++it)
        if (it->second.expires < oldest->second.expires) oldest = it;
      by_user_.erase(oldest);
    }
  }
  by_user_.insert_or_assign(std::string(user), entry);
}

bool password_matches(std::string_view user, std::string_view password, const auth::UserSecret& secret) {
  // One PBKDF2 whatever the kind of secret, as for wire logins: the time taken does not tell them apart.
  return session::cleartext_password_matches(user, password, &secret, {});
}

HttpAuthenticator::HttpAuthenticator(const session::Proxy& proxy)
    : proxy_(proxy),
      cache_(static_cast<std::size_t>(proxy.config()->http.auth_cache_size),
             proxy.config()->http.auth_cache_ttl) {}

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
  auto now = CredentialCache::Clock::now();
  // The secret is part of what is remembered, so a password changed by a reload stops working at once.
  std::string remembered = secret->text + '\0' + *request.password;
  if (!cache_.recently_verified(request.user, remembered, now)) {
    if (!password_matches(request.user, *request.password, *secret)) return failed();
    cache_.remember(request.user, remembered, now);
  }
  return {HttpIdentity{request.user, request.password}, {}};
}

}  // namespace pgmux::http
