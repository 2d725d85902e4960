// Who an HTTP request is: a configured user proven by password (checked as wire logins are, with a cache of
// recent successes so that SCRAM's 4096 PBKDF2 rounds are not paid per request) or by an API token.
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "http/sql_request.hpp"
#include "pgmux/auth/secrets.hpp"
#include "session/proxy.hpp"

namespace pgmux::http {

// Successful (user, password) checks, remembered for a while. Only a keyed hash of the pair is kept, one per
// user (a user has one valid password), compared in constant time; wrong passwords are never remembered.
class CredentialCache {
 public:
  using Clock = std::chrono::steady_clock;
  CredentialCache(std::size_t max_entries, config::Duration ttl);

  bool recently_verified(std::string_view user, std::string_view password, Clock::time_point now);
  void remember(std::string_view user, std::string_view password, Clock::time_point now);

 private:
  struct Entry {
    auth::Key256 digest;
    Clock::time_point expires;
  };
  auth::Key256 digest(std::string_view user, std::string_view password) const;

  const std::size_t max_entries_;
  const config::Duration ttl_;
  const std::string hash_key_;  // random per process: the digests mean nothing outside it
  std::mutex mutex_;
  std::unordered_map<std::string, Entry> by_user_;
};

// Whether `password` is the one `secret` stands for: equal text, the same md5 hash, or the same SCRAM
// StoredKey once derived with the verifier's salt and iterations.
bool password_matches(std::string_view user, std::string_view password, const auth::UserSecret& secret);

struct HttpIdentity {
  std::string user;
  std::optional<std::string> password;  // verified plain password: lets the pool log in as this user
};

struct AuthOutcome {
  std::optional<HttpIdentity> identity;
  RequestError error;  // when !identity: 401 with 28P01 or 28000
};

class HttpAuthenticator {
 public:
  explicit HttpAuthenticator(const session::Proxy& proxy);
  AuthOutcome authenticate(const SqlRequest& request);

 private:
  const session::Proxy& proxy_;
  CredentialCache cache_;
};

}  // namespace pgmux::http
