// CORS for browser clients of POST /sql: which origins may read answers, and the preflight answer.
#pragma once

#include <boost/beast/http.hpp>
#include <string>
#include <vector>

namespace pgmux::http {

using HttpFields = boost::beast::http::fields;

// Adds Access-Control-Allow-Origin (and Vary) when the request's Origin is allowed; nothing otherwise, so the
// browser withholds the answer. `allowed` holds exact origins or "*".
void add_cors_headers(const HttpFields& request, HttpFields& response,
                      const std::vector<std::string>& allowed);

// The answer to an OPTIONS preflight: the methods and headers POST /sql accepts, cached for a day.
void add_preflight_headers(const HttpFields& request, HttpFields& response,
                           const std::vector<std::string>& allowed);

}  // namespace pgmux::http
