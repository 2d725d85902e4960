// Recent successful cleartext password checks, shared by wire logins and POST /sql, so that a serverless
// client sending its password in clear pays SCRAM's 4096 PBKDF2 rounds once per TTL rather than per login.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "pgmux/auth/crypto.hpp"
#include "pgmux/auth/secrets.hpp"
#include "pgmux/config/config.hpp"

namespace pgmux::session {

// Only a keyed hash of (user, secret, password) is kept, one per user (a user has one valid password),
// compared in constant time; wrong passwords are never remembered. The secret is part of the hash, so a
// password changed by a reload stops matching at once; reconfigure() (every reload) forgets everything
// besides, for users removed or moved to auth_query.
class PasswordCache {
 public:
  using Clock = std::chrono::steady_clock;
  PasswordCache(std::size_t max_entries, config::Duration ttl);

  bool recently_verified(std::string_view user, std::string_view secret, std::string_view password,
                         Clock::time_point now);
  void remember(std::string_view user, std::string_view secret, std::string_view password,
                Clock::time_point now);
  // New size and TTL from a reload; forgets every entry.
  void reconfigure(std::size_t max_entries, config::Duration ttl);
  std::size_t size();

 private:
  struct Entry {
    auth::Key256 digest;
    Clock::time_point expires;
  };
  auth::Key256 digest(std::string_view user, std::string_view secret, std::string_view password) const;

  const std::string hash_key_;  // random per process: the digests mean nothing outside it
  std::mutex mutex_;
  std::size_t max_entries_;  // under mutex_, as are the two below
  config::Duration ttl_;
  std::unordered_map<std::string, Entry> by_user_;
};

// Whether a password sent in clear is `user`'s: a recent success answers at once; anything else costs the one
// PBKDF2 of cleartext_password_matches (so a wrong password, a missing user and a cold cache take the same
// time), and a success is remembered.
bool check_cleartext_password(PasswordCache& cache, std::string_view user, std::string_view password,
                              const auth::UserSecret* secret, std::string_view mock_secret);

}  // namespace pgmux::session
