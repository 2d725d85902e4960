// Recent successful cleartext password checks, shared by wire logins and POST /sql.
#include "session/password_cache.hpp"

#include "log.hpp"
#include "session/unknown_user.hpp"

namespace pgmux::session {

PasswordCache::PasswordCache(std::size_t max_entries, config::Duration ttl)
    : hash_key_(auth::random_string(32)), max_entries_(max_entries), ttl_(ttl) {}

auth::Key256 PasswordCache::digest(std::string_view user, std::string_view secret,
                                   std::string_view password) const {
  std::string message;
  message.reserve(user.size() + 1 + secret.size() + 1 + password.size());
  // The NULs keep ("ab","c") and ("a","bc") apart; none of the three can contain one.
  message.append(user).push_back('\0');
  message.append(secret).push_back('\0');
  message.append(password);
  return auth::hmac_sha256(hash_key_, message);
}

bool PasswordCache::recently_verified(std::string_view user, std::string_view secret,
                                      std::string_view password, Clock::time_point now) {
  auth::Key256 wanted = digest(user, secret, password);
  std::lock_guard lock(mutex_);
  if (max_entries_ == 0) return false;
  auto it = by_user_.find(std::string(user));
  if (it == by_user_.end() || it->second.expires <= now) return false;
  return auth::constant_time_equal(auth::as_view(it->second.digest), auth::as_view(wanted));
}

void PasswordCache::remember(std::string_view user, std::string_view secret, std::string_view password,
                             Clock::time_point now) {
  auth::Key256 computed = digest(user, secret, password);
  std::lock_guard lock(mutex_);
  if (max_entries_ == 0) return;
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
  by_user_.insert_or_assign(std::string(user), Entry{computed, now + ttl_});
}

void PasswordCache::reconfigure(std::size_t max_entries, config::Duration ttl) {
  std::lock_guard lock(mutex_);
  max_entries_ = max_entries;
  ttl_ = ttl;
  by_user_.clear();
}

std::size_t PasswordCache::size() {
  std::lock_guard lock(mutex_);
  return by_user_.size();
}

bool check_cleartext_password(PasswordCache& cache, std::string_view user, std::string_view password,
                              const auth::UserSecret* secret, std::string_view mock_secret) {
  auto now = PasswordCache::Clock::now();
  if (secret && cache.recently_verified(user, secret->text, password, now)) {
    log::debug("the password of user=", user, " matched a recent check: no PBKDF2 (auth_cache_ttl)");
    return true;
  }
  if (!cleartext_password_matches(user, password, secret, mock_secret)) return false;
  cache.remember(user, secret->text, password, now);
  return true;
}

}  // namespace pgmux::session
