// CORS for browser clients of POST /sql: which origins may read answers, and the preflight answer.
#include "http/cors.hpp"

#include <algorithm>

namespace pgmux::http {

namespace bhttp = boost::beast::http;

void add_cors_headers(const HttpFields& request, HttpFields& response,
                      const std::vector<std::string>& allowed) {
  auto origin = request.find(bhttp::field::origin);
  if (origin == request.end() || allowed.empty()) return;
  const bool any = std::find(allowed.begin(), allowed.end(), "*") != allowed.end();
  if (!any && std::find(allowed.begin(), allowed.end(), origin->value()) == allowed.end()) return;
  response.set(bhttp::field::access_control_allow_origin,
               any ? std::string_view("*") : std::string_view(origin->value()));
  if (!any) response.set(bhttp::field::vary, "Origin");  // the answer differs by origin: caches must know
}

void add_preflight_headers(const HttpFields& request, HttpFields& response,
                           const std::vector<std::string>& allowed) {
  add_cors_headers(request, response, allowed);
  if (response.find(bhttp::field::access_control_allow_origin) == response.end()) return;
  response.set(bhttp::field::access_control_allow_methods, "POST, OPTIONS");
  response.set(bhttp::field::access_control_allow_headers,
               "Authorization, Content-Type, Neon-Connection-String, Neon-Raw-Text-Output, Neon-Array-Mode, "
               "Neon-Batch-Isolation-Level, Neon-Batch-Read-Only, Neon-Batch-Deferrable, Pgmux-Database, "
               "Pgmux-Statement-Timeout");
  response.set(bhttp::field::access_control_max_age, "86400");
}

}  // namespace pgmux::http
