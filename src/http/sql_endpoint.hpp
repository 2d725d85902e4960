// POST /sql: the Neon serverless driver's HTTP protocol, served from the same pools as wire clients.
#pragma once

#include <boost/beast/http.hpp>

#include "http/credential_memo.hpp"
#include "http/http_auth.hpp"
#include "http/sql_runner.hpp"
#include "session/proxy.hpp"

namespace pgmux::http {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;

class SqlEndpoint {
 public:
  explicit SqlEndpoint(session::Proxy& proxy);

  // Reads the request, authenticates it, borrows a backend of (database, user), runs the queries and gives
  // the backend back. Every outcome is a JSON body: 200, 400 (SQL or request errors, with a SQLSTATE), 401,
  // 413/415, or 503 when no backend could be had. `memo`: the connection's, if it has one.
  asio::awaitable<SqlAnswer> answer(const HttpRequest& request, CredentialMemo* memo = nullptr);

 private:
  session::Proxy& proxy_;
  HttpAuthenticator authenticator_;
};

}  // namespace pgmux::http
