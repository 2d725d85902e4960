// Who an HTTP request is: a configured user proven by password (checked as wire logins are, through the cache
// of recent successes they share, so that SCRAM's 4096 PBKDF2 rounds are not paid per request) or by an API
// token.
#pragma once

#include <optional>
#include <string>

#include "http/sql_request.hpp"
#include "session/proxy.hpp"

namespace pgmux::http {

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
};

}  // namespace pgmux::http
