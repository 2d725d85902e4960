// What one POST /sql asks for, read from its headers and JSON body: queries, parameters, options, identity.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgmux/config/config.hpp"

namespace pgmux::http {

struct SqlQuery {
  std::string text;
  std::vector<std::optional<std::string>> params;  // text values bound as-is; nullopt is SQL NULL
};

// Neon-Batch-Isolation-Level values, spelled as the driver sends them.
enum class IsolationLevel { server_default, read_uncommitted, read_committed, repeatable_read, serializable };

struct SqlRequest {
  std::vector<SqlQuery> queries;
  bool batch = false;       // {"queries": [...]}: one transaction, one result per query
  bool array_mode = false;  // Neon-Array-Mode: rows as arrays instead of objects keyed by field name
  IsolationLevel isolation = IsolationLevel::server_default;
  std::optional<bool> read_only, deferrable;
  config::Duration statement_timeout{0};  // 0: leave the server's setting alone

  std::string database;  // a pgmux database name
  std::string user;      // empty only with a bearer token
  std::optional<std::string> password;
  std::optional<std::string> bearer_token;
};

// A request pgmux refuses before any backend is involved: the HTTP status and a SQLSTATE for the JSON body.
struct RequestError {
  int status = 400;
  std::string sqlstate;
  std::string message;
};

// The headers that matter, as the HTTP layer found them (empty when absent).
struct SqlRequestHeaders {
  std::string_view connection_string;  // Neon-Connection-String
  std::string_view database;           // Pgmux-Database, for clients without a connection string
  std::string_view authorization;
  std::string_view array_mode, raw_text_output;
  std::string_view isolation_level, read_only, deferrable;  // Neon-Batch-*
  std::string_view statement_timeout;                       // Pgmux-Statement-Timeout, milliseconds
  std::string_view content_type;
};

// Who a request says it is, as read from its headers.
struct SqlCredentials {
  std::string database, user;
  std::optional<std::string> password, bearer_token;
};

struct ParsedSqlRequest {
  std::optional<SqlRequest> request;
  RequestError error;  // when !request
};

// `known`: the credentials the same headers gave before (CredentialMemo), taken instead of read again.
ParsedSqlRequest parse_sql_request(const SqlRequestHeaders& headers, std::string_view body,
                                   const config::HttpSqlConfig& limits,
                                   const SqlCredentials* known = nullptr);

// "BEGIN ISOLATION LEVEL ... READ ONLY DEFERRABLE" for a batch.
std::string begin_statement(const SqlRequest& request);

}  // namespace pgmux::http
