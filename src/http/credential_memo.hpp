// What the last request on one HTTP connection proved about its sender: the next one repeating the same
// credential headers under the same config is neither parsed nor checked again.
#pragma once

#include <memory>
#include <string>

#include "http/http_auth.hpp"
#include "http/sql_request.hpp"
#include "pgmux/auth/crypto.hpp"

namespace pgmux::http {

// Neon's driver sends its connection string, password included, with every query on a keep-alive
// connection; parsing the URL and checking the password (a keyed hash and a look-up in the shared cache)
// were a sixth of POST /sql's CPU. Only a success is remembered, for one connection, and a reload (a new
// config) makes the next request prove itself again.
class CredentialMemo {
 public:
  bool matches(const SqlRequestHeaders& headers, const std::shared_ptr<const config::Config>& config) const {
    return config_ && config_ == config && headers.database == database_ &&
           auth::constant_time_equal(headers.connection_string, connection_string_) &&
           auth::constant_time_equal(headers.authorization, authorization_);
  }
  void remember(const SqlRequestHeaders& headers, std::shared_ptr<const config::Config> config,
                const SqlRequest& request, const HttpIdentity& identity) {
    connection_string_ = headers.connection_string;
    authorization_ = headers.authorization;
    database_ = headers.database;
    config_ = std::move(config);
    credentials_ = {request.database, request.user, request.password, request.bearer_token};
    identity_ = identity;
  }
  const SqlCredentials& credentials() const { return credentials_; }
  const HttpIdentity& identity() const { return identity_; }

 private:
  std::string connection_string_, authorization_, database_;  // the headers exactly as sent
  std::shared_ptr<const config::Config> config_;              // checked under this one
  SqlCredentials credentials_;                                // what they said
  HttpIdentity identity_;                                     // who they proved to be
};

}  // namespace pgmux::http
