// libFuzzer harness: the POST /sql decoder on any headers and body: a request or a refusal with a status and
// SQLSTATE, never anything else.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "http/sql_request.hpp"

namespace {

// Takes the text up to the next NUL (the separator between header values and the body in an input).
std::string_view take(std::string_view& rest) {
  const std::size_t end = rest.find('\0');
  const std::string_view out = rest.substr(0, end);
  rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  pgmux::http::SqlRequestHeaders headers;
  headers.connection_string = take(rest);
  headers.database = take(rest);
  headers.authorization = take(rest);
  headers.array_mode = take(rest);
  headers.raw_text_output = take(rest);
  headers.isolation_level = take(rest);
  headers.read_only = take(rest);
  headers.deferrable = take(rest);
  headers.statement_timeout = take(rest);
  headers.content_type = take(rest);
  const std::string_view body = rest;

  pgmux::config::HttpSqlConfig limits;
  limits.max_queries_per_batch = 20;
  limits.max_params_per_query = 50;
  const auto parsed = pgmux::http::parse_sql_request(headers, body, limits);
  if (parsed.request) {
    const auto& request = *parsed.request;
    if (!request.batch && request.queries.size() != 1) std::abort();
    if (static_cast<int>(request.queries.size()) > limits.max_queries_per_batch) std::abort();
    for (const auto& query : request.queries)
      if (static_cast<int>(query.params.size()) > limits.max_params_per_query) std::abort();
    if (request.batch) (void)pgmux::http::begin_statement(request);
  } else {
    const auto& error = parsed.error;
    if (error.status < 400 || error.status > 499 || error.sqlstate.size() != 5 || error.message.empty())
      std::abort();
  }
  return 0;
}
