// What one POST /sql asks for, read from its headers and JSON body: queries, parameters, options, identity.
#include "http/sql_request.hpp"

#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <charconv>

#include "pgmux/auth/crypto.hpp"

namespace pgmux::http {

namespace json = boost::json;

namespace {

// SQLSTATEs for requests refused before they reach Postgres.
constexpr const char* kProtocolViolation = "08P01";  // not a request we can read
constexpr const char* kInvalidParameterValue = "22023";
constexpr const char* kProgramLimitExceeded = "54000";
constexpr const char* kTooManyArguments = "54023";
constexpr const char* kUnknownDatabase = "3D000";
constexpr const char* kCharacterNotInRepertoire = "22021";  // what Postgres says of a NUL in text

ParsedSqlRequest refuse(int status, const char* sqlstate, std::string message) {
  return {std::nullopt, RequestError{status, sqlstate, std::move(message)}};
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

// "true"/"false" as the driver writes them; anything else is the caller's mistake.
std::optional<bool> boolean_header(std::string_view text, bool& ok) {
  ok = true;
  if (text.empty()) return std::nullopt;
  if (equals_ignoring_case(text, "true")) return true;
  if (equals_ignoring_case(text, "false")) return false;
  ok = false;
  return std::nullopt;
}

bool parse_isolation(std::string_view text, IsolationLevel& out) {
  if (text.empty())
    out = IsolationLevel::server_default;
  else if (text == "ReadUncommitted")
    out = IsolationLevel::read_uncommitted;
  else if (text == "ReadCommitted")
    out = IsolationLevel::read_committed;
  else if (text == "RepeatableRead")
    out = IsolationLevel::repeatable_read;
  else if (text == "Serializable")
    out = IsolationLevel::serializable;
  else
    return false;
  return true;
}

// The driver sends parameters already as text or null. Numbers, booleans and objects from other clients are
// turned into the text Postgres would accept for them; an array has no single obvious text form.
bool param_text(const json::value& value, std::optional<std::string>& out) {
  switch (value.kind()) {
    case json::kind::null:
      out.reset();
      return true;
    case json::kind::string:
      out.emplace(value.get_string());
      return true;
    case json::kind::bool_:
      out.emplace(value.get_bool() ? "true" : "false");
      return true;
    case json::kind::int64:
      out.emplace(std::to_string(value.get_int64()));
      return true;
    case json::kind::uint64:
      out.emplace(std::to_string(value.get_uint64()));
      return true;
    case json::kind::double_: {
      char digits[32];
      auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value.get_double());
      out.emplace(digits, end);
      return true;
    }
    case json::kind::object:
      out.emplace(json::serialize(value));
      return true;
    default:
      return false;
  }
}

std::optional<RequestError> read_query(const json::value& item, const config::HttpSqlConfig& limits,
                                       const std::string& where, SqlQuery& out) {
  const json::object* object = item.if_object();
  if (!object) return RequestError{400, kProtocolViolation, where + " must be a JSON object"};
  const json::value* query = object->if_contains("query");
  if (!query || !query->is_string())
    return RequestError{400, kProtocolViolation, where + " has no \"query\" string"};
  out.text = query->get_string();
  // Parse carries the query NUL-terminated: a NUL inside would cut it and misframe the message.
  if (out.text.find('\0') != std::string::npos)
    return RequestError{400, kCharacterNotInRepertoire, where + ".query contains a NUL character"};
  const json::value* params = object->if_contains("params");
  if (!params || params->is_null()) return std::nullopt;
  if (!params->is_array())
    return RequestError{400, kInvalidParameterValue, where + ".params must be an array"};
  const json::array& values = params->get_array();
  if (values.size() > static_cast<std::size_t>(limits.max_params_per_query))
    return RequestError{400, kTooManyArguments,
                        where + " has " + std::to_string(values.size()) + " parameters; the limit is " +
                            std::to_string(limits.max_params_per_query) + " (http.max_params_per_query)"};
  out.params.resize(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!param_text(values[i], out.params[i]))
      return RequestError{400, kInvalidParameterValue,
                          where + ".params[" + std::to_string(i) +
                              "] must be a string, number, boolean, object or null, not an array"};
  }
  return std::nullopt;
}

// postgres://user:password@host/database?options, as the driver builds it; only user, password and database
// are used (the host is whatever pgmux fronts).
std::optional<RequestError> read_connection_string(std::string_view text, SqlRequest& out) {
  auto url = boost::urls::parse_uri(text);
  if (!url || (url->scheme() != "postgres" && url->scheme() != "postgresql"))
    return RequestError{400, kProtocolViolation,
                        "Neon-Connection-String is not a postgres:// or postgresql:// URL"};
  out.user = url->user();
  if (url->has_password()) out.password = url->password();
  std::string path = url->path();
  if (!path.empty() && path[0] == '/') path.erase(0, 1);
  out.database = std::move(path);
  return std::nullopt;
}

std::optional<RequestError> read_authorization(std::string_view text, SqlRequest& out) {
  if (text.empty()) return std::nullopt;
  std::size_t space = text.find(' ');
  std::string_view scheme = text.substr(0, space);
  std::string_view credentials = space == std::string_view::npos ? "" : text.substr(space + 1);
  while (!credentials.empty() && credentials.front() == ' ') credentials.remove_prefix(1);
  if (equals_ignoring_case(scheme, "Bearer") && !credentials.empty()) {
    out.bearer_token.emplace(credentials);
    return std::nullopt;
  }
  if (equals_ignoring_case(scheme, "Basic")) {
    std::optional<std::string> decoded = auth::base64_decode(credentials);
    std::size_t colon = decoded ? decoded->find(':') : std::string::npos;
    if (colon == std::string::npos)
      return RequestError{401, "28000", "Authorization: Basic needs base64 of user:password"};
    out.user = decoded->substr(0, colon);
    out.password = decoded->substr(colon + 1);
    return std::nullopt;
  }
  return RequestError{401, "28000", "Authorization must be Basic or Bearer"};
}

bool content_type_accepted(std::string_view type) {
  // The driver posts a string body, which fetch labels text/plain; other clients say application/json.
  std::string_view essence = type.substr(0, type.find(';'));
  while (!essence.empty() && essence.back() == ' ') essence.remove_suffix(1);
  return essence.empty() || equals_ignoring_case(essence, "application/json") ||
         equals_ignoring_case(essence, "text/plain");
}

}  // namespace

ParsedSqlRequest parse_sql_request(const SqlRequestHeaders& headers, std::string_view body,
                                   const config::HttpSqlConfig& limits, const SqlCredentials* known) {
  SqlRequest request;
  if (!content_type_accepted(headers.content_type))
    return refuse(
        415, kProtocolViolation,
        "Content-Type must be application/json (or text/plain), not " + std::string(headers.content_type));
  if (known) {
    request.database = known->database;
    request.user = known->user;
    request.password = known->password;
    request.bearer_token = known->bearer_token;
  } else {
    if (!headers.connection_string.empty())
      if (auto error = read_connection_string(headers.connection_string, request))
        return {std::nullopt, *error};
    if (auto error = read_authorization(headers.authorization, request)) return {std::nullopt, *error};
    if (!headers.database.empty()) request.database = headers.database;
  }
  if (request.database.empty())
    return refuse(400, kUnknownDatabase, "no database: send Neon-Connection-String (or Pgmux-Database)");
  if (request.user.empty() && !request.bearer_token)
    return refuse(401, "28000", "no user: send Neon-Connection-String with a user, or Authorization");

  bool ok = true;
  request.array_mode = boolean_header(headers.array_mode, ok).value_or(false);
  if (!ok) return refuse(400, kInvalidParameterValue, "Neon-Array-Mode must be true or false");
  // Values always go out as Postgres's text output; raw text is the only mode pgmux has.
  boolean_header(headers.raw_text_output, ok);
  if (!ok) return refuse(400, kInvalidParameterValue, "Neon-Raw-Text-Output must be true or false");
  if (!parse_isolation(headers.isolation_level, request.isolation))
    return refuse(400, kInvalidParameterValue,
                  "Neon-Batch-Isolation-Level must be ReadUncommitted, ReadCommitted, RepeatableRead or "
                  "Serializable");
  request.read_only = boolean_header(headers.read_only, ok);
  if (!ok) return refuse(400, kInvalidParameterValue, "Neon-Batch-Read-Only must be true or false");
  request.deferrable = boolean_header(headers.deferrable, ok);
  if (!ok) return refuse(400, kInvalidParameterValue, "Neon-Batch-Deferrable must be true or false");
  request.statement_timeout = limits.statement_timeout;
  if (!headers.statement_timeout.empty()) {
    long long ms = -1;
    std::string_view text = headers.statement_timeout;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
    if (ec != std::errc() || end != text.data() + text.size() || ms < 0 || ms > INT32_MAX)
      return refuse(400, kInvalidParameterValue,
                    "Pgmux-Statement-Timeout must be a number of milliseconds (0 = none)");
    request.statement_timeout = config::Duration(ms);
  }

  json::error_code ec;
  // The document lives only while the request is read: its values come from this buffer on the stack (a
  // typical query's fit), not one allocation each.
  unsigned char arena[4096];
  json::monotonic_resource resource(arena, sizeof arena);
  json::value document = json::parse(body, ec, &resource);
  if (ec) return refuse(400, kProtocolViolation, "the body is not valid JSON: " + ec.message());
  const json::object* object = document.if_object();
  if (!object) return refuse(400, kProtocolViolation, "the body must be a JSON object");
  if (const json::value* queries = object->if_contains("queries")) {
    if (!queries->is_array()) return refuse(400, kProtocolViolation, "\"queries\" must be an array");
    const json::array& items = queries->get_array();
    if (items.size() > static_cast<std::size_t>(limits.max_queries_per_batch))
      return refuse(400, kProgramLimitExceeded,
                    "the batch has " + std::to_string(items.size()) + " queries; the limit is " +
                        std::to_string(limits.max_queries_per_batch) + " (http.max_queries_per_batch)");
    request.batch = true;
    request.queries.resize(items.size());
    for (std::size_t i = 0; i < items.size(); ++i)
      if (auto error = read_query(items[i], limits, "queries[" + std::to_string(i) + "]", request.queries[i]))
        return {std::nullopt, *error};
  } else {
    request.queries.resize(1);
    if (auto error = read_query(document, limits, "the body", request.queries[0]))
      return {std::nullopt, *error};
  }
  return {std::move(request), {}};
}

std::string begin_statement(const SqlRequest& request) {
  std::string sql = "BEGIN";
  switch (request.isolation) {
    case IsolationLevel::server_default:
      break;
    case IsolationLevel::read_uncommitted:
      sql += " ISOLATION LEVEL READ UNCOMMITTED";
      break;
    case IsolationLevel::read_committed:
      sql += " ISOLATION LEVEL READ COMMITTED";
      break;
    case IsolationLevel::repeatable_read:
      sql += " ISOLATION LEVEL REPEATABLE READ";
      break;
    case IsolationLevel::serializable:
      sql += " ISOLATION LEVEL SERIALIZABLE";
      break;
  }
  if (request.read_only) sql += *request.read_only ? " READ ONLY" : " READ WRITE";
  if (request.deferrable) sql += *request.deferrable ? " DEFERRABLE" : " NOT DEFERRABLE";
  return sql;
}

}  // namespace pgmux::http
