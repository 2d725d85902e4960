// Helpers for POST /sql tests: requests shaped as the Neon driver sends them, and checks of the answers.
#pragma once

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <string>

#include "http_client.hpp"

namespace pgmux::test {

namespace json = boost::json;

// A request as the Neon driver sends it (connection string, array mode, raw text output).
inline HttpCall neon_call(std::string body, const std::string& user = "app",
                          const std::string& password = "app-secret", const std::string& database = "app") {
  HttpCall call;
  call.body = std::move(body);
  call.headers = {
      {"Neon-Connection-String",
       "postgresql://" + user + ":" + password + "@pgmux.test/" + database + "?application_name=tests"},
      {"Neon-Raw-Text-Output", "true"},
      {"Neon-Array-Mode", "true"},
      {"Content-Type", "text/plain;charset=UTF-8"},
  };
  return call;
}

inline std::string query_body(const std::string& sql, const json::array& params = {}) {
  return json::serialize(json::object{{"query", sql}, {"params", params}});
}

inline json::object parse_object(const HttpReply& reply) {
  INFO("status " << reply.status << " body: " << reply.body << " " << reply.error);
  json::error_code ec;
  json::value value = json::parse(reply.body, ec);
  REQUIRE(!ec);
  REQUIRE(value.is_object());
  return value.as_object();
}

// The single answer of a request that must succeed.
inline json::object ok(const HttpReply& reply) {
  INFO("body: " << reply.body << " " << reply.error);
  REQUIRE(reply.status == 200);
  return parse_object(reply);
}

// The error object of a request that must fail with `status` and `code`.
inline json::object refused(const HttpReply& reply, int status, const std::string& code) {
  INFO("body: " << reply.body << " " << reply.error);
  CHECK(reply.status == status);
  json::object error = parse_object(reply);
  CHECK(error["code"] == json::value(code));
  CHECK(error["message"].is_string());
  return error;
}

inline HttpReply post(int port, const HttpCall& call) {
  HttpConnection connection(port);
  REQUIRE(connection.connected());
  return connection.send(call);
}

}  // namespace pgmux::test
