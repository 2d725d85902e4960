// HTTP request limits that had no test of their own: headers over http.max_header_size get 431 JSON.
#include <catch2/catch.hpp>

#include "neon_http.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;

TEST_CASE("request headers over http.max_header_size get 431 with a JSON error; the next request is served",
          "[http-sql][limits]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = "http:\n  max_header_size: 2048\n", .http = true});
  HttpCall fat = neon_call(query_body("SELECT 1"));
  fat.headers.push_back({"X-Padding", std::string(4000, 'p')});
  HttpReply reply = post(mux.http_port(), fat);
  json::object error = refused(reply, 431, "54000");
  CHECK(std::string(error["message"].as_string()).find("http.max_header_size") != std::string::npos);
  CHECK_FALSE(reply.keep_alive);
  // Just under the limit is fine.
  HttpCall lean = neon_call(query_body("SELECT 1"));
  lean.headers.push_back({"X-Padding", std::string(1000, 'p')});
  json::object answer = ok(post(mux.http_port(), lean));
  CHECK(answer["rows"] == json::parse(R"([["1"]])"));
}
