// Unit tests for the pure parts of POST /sql: request reading, JSON text, the answer writer fed backend
// messages, password checks and their cache, and the http: config section.
#include <catch2/catch.hpp>
#include <filesystem>

#include "http/http_auth.hpp"
#include "http/json_text.hpp"
#include "http/result_json.hpp"
#include "http/sql_request.hpp"
#include "pgmux/auth/crypto.hpp"
#include "pgmux/auth/md5.hpp"
#include "pgmux/protocol/builders.hpp"

using namespace pgmux;
using namespace pgmux::http;
using protocol::MessageBuilder;
using namespace std::chrono_literals;

namespace {

SqlRequestHeaders neon_headers(std::string_view connection_string) {
  SqlRequestHeaders h;
  h.connection_string = connection_string;
  h.array_mode = "true";
  h.raw_text_output = "true";
  return h;
}

ParsedSqlRequest parse(const SqlRequestHeaders& headers, std::string_view body,
                       const config::HttpSqlConfig& limits = {}) {
  return parse_sql_request(headers, body, limits);
}

// Feeds whole messages built with MessageBuilder to the writer, as the runner does after cutting them.
struct Feed {
  ResultJsonWriter& writer;
  bool operator()(char type, const std::string& body) { return writer.on_message(type, body); }
};

std::string row_description(const std::vector<std::pair<std::string, std::uint32_t>>& columns) {
  std::string out;
  {
    MessageBuilder m(out, 'T');
    m.u16(static_cast<std::uint16_t>(columns.size()));
    for (const auto& [name, oid] : columns)
      m.cstr(name).u32(16384).u16(2).u32(oid).u16(oid == 23 ? 4 : 0xffff).u32(0xffffffff).u16(0);
  }
  return out.substr(5);
}

std::string data_row(const std::vector<std::optional<std::string>>& values) {
  std::string out;
  {
    MessageBuilder m(out, 'D');
    m.u16(static_cast<std::uint16_t>(values.size()));
    for (const auto& v : values) {
      if (!v)
        m.u32(0xffffffff);
      else
        m.u32(static_cast<std::uint32_t>(v->size())).bytes(*v);
    }
  }
  return out.substr(5);
}

std::string cstr(std::string_view s) {
  return std::string(s) + '\0';
}

}  // namespace

TEST_CASE("JSON strings escape quotes, backslashes and control characters and keep UTF-8 as is",
          "[http-sql]") {
  std::string out;
  append_json_string(out, "a\"b\\c\nd\te\x01\x1f f\x7f é 🐘");
  CHECK(out == "\"a\\\"b\\\\c\\nd\\te\\u0001\\u001f f\x7f é 🐘\"");
  out.clear();
  append_json_string(out, std::string_view("\0", 1));
  CHECK(out == "\"\\u0000\"");
  out.clear();
  append_json_int(out, -2147483648LL);
  CHECK(out == "-2147483648");
}

TEST_CASE("a Neon request gives user, password and database from its connection string", "[http-sql]") {
  ParsedSqlRequest parsed =
      parse(neon_headers("postgresql://al%40ice:p%3Ass%2Fw@host.example:5432/my%20db?application_name=x"),
            R"({"query":"SELECT $1, $2, $3, $4, $5, $6","params":["s",null,7,-1.5,true,{"a":[1]}]})");
  REQUIRE(parsed.request);
  const SqlRequest& r = *parsed.request;
  CHECK(r.user == "al@ice");
  CHECK(r.password == "p:ss/w");
  CHECK(r.database == "my db");
  CHECK(r.array_mode);
  CHECK_FALSE(r.batch);
  REQUIRE(r.queries.size() == 1);
  CHECK(r.queries[0].text == "SELECT $1, $2, $3, $4, $5, $6");
  const auto& p = r.queries[0].params;
  REQUIRE(p.size() == 6);
  CHECK(p[0] == "s");
  CHECK_FALSE(p[1]);
  CHECK(p[2] == "7");
  CHECK(p[3] == "-1.5");
  CHECK(p[4] == "true");
  CHECK(p[5] == R"({"a":[1]})");
}

TEST_CASE("a batch reads its queries and its transaction options", "[http-sql]") {
  SqlRequestHeaders h = neon_headers("postgres://u:p@h/db");
  h.isolation_level = "RepeatableRead";
  h.read_only = "false";
  h.deferrable = "true";
  h.statement_timeout = "1500";
  ParsedSqlRequest parsed =
      parse(h, R"({"queries":[{"query":"SELECT 1"},{"query":"SELECT $1","params":["x"]}]})");
  REQUIRE(parsed.request);
  CHECK(parsed.request->batch);
  CHECK(parsed.request->queries.size() == 2);
  CHECK(parsed.request->statement_timeout == 1500ms);
  CHECK(begin_statement(*parsed.request) == "BEGIN ISOLATION LEVEL REPEATABLE READ READ WRITE DEFERRABLE");
  h.isolation_level = "";
  h.read_only = "";
  h.deferrable = "";
  CHECK(begin_statement(*parse(h, R"({"queries":[]})").request) == "BEGIN");
}

TEST_CASE("Authorization: Basic replaces the connection string's user; Bearer needs no password",
          "[http-sql]") {
  SqlRequestHeaders h;
  h.database = "app";
  const std::string basic_header = "Basic " + auth::base64_encode("bob:se:cret");
  h.authorization = basic_header;
  ParsedSqlRequest basic = parse(h, R"({"query":"SELECT 1"})");
  REQUIRE(basic.request);
  CHECK(basic.request->user == "bob");
  CHECK(basic.request->password == "se:cret");
  h.authorization = "Bearer abc.def";
  ParsedSqlRequest bearer = parse(h, R"({"query":"SELECT 1"})");
  REQUIRE(bearer.request);
  CHECK(bearer.request->bearer_token == "abc.def");
  CHECK(bearer.request->user.empty());
  h.authorization = "Digest x";
  CHECK(parse(h, R"({"query":"SELECT 1"})").error.status == 401);
}

TEST_CASE("malformed requests are refused with a status and SQLSTATE before anything runs", "[http-sql]") {
  auto refusal = [](const SqlRequestHeaders& h, std::string_view body,
                    const config::HttpSqlConfig& limits = {}) {
    ParsedSqlRequest parsed = parse_sql_request(h, body, limits);
    REQUIRE_FALSE(parsed.request);
    return std::to_string(parsed.error.status) + " " + parsed.error.sqlstate;
  };
  const SqlRequestHeaders ok = neon_headers("postgresql://u:p@h/db");
  CHECK(refusal(ok, "{") == "400 08P01");
  CHECK(refusal(ok, "[]") == "400 08P01");
  CHECK(refusal(ok, R"({"params":[]})") == "400 08P01");
  CHECK(refusal(ok, R"({"queries":{}})") == "400 08P01");
  CHECK(refusal(ok, R"({"queries":[1]})") == "400 08P01");
  CHECK(refusal(ok, R"({"query":"SELECT $1","params":[[1]]})") == "400 22023");
  CHECK(refusal(ok, R"({"query":"a\u0000b"})") == "400 22021");
  config::HttpSqlConfig limits;
  limits.max_params_per_query = 1;
  limits.max_queries_per_batch = 1;
  CHECK(refusal(ok, R"({"query":"SELECT $1, $2","params":["1","2"]})", limits) == "400 54023");
  CHECK(refusal(ok, R"({"queries":[{"query":"SELECT 1"},{"query":"SELECT 2"}]})", limits) == "400 54000");
  CHECK(refusal(neon_headers("mysql://u:p@h/db"), R"({"query":"SELECT 1"})") == "400 08P01");
  CHECK(refusal(neon_headers("postgresql://u:p@h"), R"({"query":"SELECT 1"})") == "400 3D000");
  CHECK(refusal(neon_headers("postgresql://h/db"), R"({"query":"SELECT 1"})") == "401 28000");
  SqlRequestHeaders bad = ok;
  bad.array_mode = "yes";
  CHECK(refusal(bad, R"({"query":"SELECT 1"})") == "400 22023");
  bad = ok;
  bad.statement_timeout = "5s";
  CHECK(refusal(bad, R"({"query":"SELECT 1"})") == "400 22023");
  bad = ok;
  bad.content_type = "multipart/form-data; boundary=x";
  CHECK(refusal(bad, R"({"query":"SELECT 1"})") == "415 08P01");
  bad.content_type = "application/json; charset=utf-8";
  CHECK(parse(bad, R"({"query":"SELECT 1"})").request);
}

TEST_CASE("the answer writer turns a pipeline's messages into the driver's JSON", "[http-sql]") {
  std::string out;
  // One hidden execute (set_config) before the caller's query: its row must not appear.
  ResultJsonWriter writer(out, true, 1, 1, 1 << 20);
  Feed feed{writer};
  CHECK(feed('1', ""));
  CHECK(feed('2', ""));
  CHECK(feed('D', data_row({"5000"})));
  CHECK(feed('C', cstr("SELECT 1")));
  CHECK(feed('1', ""));
  CHECK(feed('2', ""));
  CHECK(feed('T', row_description({{"id", 23}, {"na\"me", 25}})));
  CHECK(feed('D', data_row({"1", "x\ny"})));
  CHECK(feed('N', "SNOTICE\0"));
  CHECK(feed('D', data_row({"2", std::nullopt})));
  CHECK(feed('C', cstr("SELECT 2")));
  CHECK_FALSE(writer.ready());
  CHECK(feed('Z', "I"));
  CHECK(writer.ready());
  CHECK(writer.ready_status() == 'I');
  CHECK_FALSE(writer.failed());
  CHECK(out == R"({"fields":[{"name":"id","dataTypeID":23,"tableID":16384,"columnID":2,"dataTypeSize":4,)"
               R"("dataTypeModifier":-1,"format":"text"},{"name":"na\"me","dataTypeID":25,"tableID":16384,)"
               R"("columnID":2,"dataTypeSize":-1,"dataTypeModifier":-1,"format":"text"}],)"
               R"("rows":[["1","x\ny"],["2",null]],"command":"SELECT","rowCount":2,"rowAsArray":true})");
}

TEST_CASE("object rows, commands without rows and results of a batch", "[http-sql]") {
  std::string out = "{\"results\":[";
  ResultJsonWriter writer(out, false, 1, 2, 1 << 20);  // BEGIN hidden, two queries, COMMIT after
  Feed feed{writer};
  CHECK(feed('C', cstr("BEGIN")));
  CHECK(feed('n', ""));
  CHECK(feed('C', cstr("INSERT 0 3")));
  CHECK(feed('T', row_description({{"a", 23}, {"b", 23}})));
  CHECK(feed('D', data_row({"1", "2"})));
  CHECK(feed('C', cstr("SELECT 1")));
  CHECK(feed('C', cstr("COMMIT")));
  CHECK(feed('Z', "I"));
  out += "]}";
  CHECK(out == R"({"results":[{"fields":[],"rows":[],"command":"INSERT","rowCount":3,"rowAsArray":false},)"
               R"({"fields":[{"name":"a","dataTypeID":23,"tableID":16384,"columnID":2,"dataTypeSize":4,)"
               R"("dataTypeModifier":-1,"format":"text"},{"name":"b","dataTypeID":23,"tableID":16384,)"
               R"("columnID":2,"dataTypeSize":4,"dataTypeModifier":-1,"format":"text"}],)"
               R"("rows":[{"a":"1","b":"2"}],"command":"SELECT","rowCount":1,"rowAsArray":false}]})");
}

TEST_CASE("an ErrorResponse becomes the driver's error object; a huge answer stops growing", "[http-sql]") {
  std::string out;
  ResultJsonWriter writer(out, true, 0, 1, 200);
  Feed feed{writer};
  CHECK(feed('T', row_description({{"v", 25}})));
  CHECK(feed('D', data_row({std::string(20, 'x')})));
  CHECK_FALSE(writer.too_large());
  CHECK(feed('D', data_row({std::string(100, 'y')})));
  CHECK(writer.too_large());
  CHECK(out.find("yyyy") == std::string::npos);
  static constexpr char kError[] = "SERROR\0VERROR\0C57014\0Mcanceling statement\0P7\0nc1\0Rrt\0\0";
  CHECK(feed('E', std::string(kError, sizeof kError - 1)));
  CHECK(writer.failed());
  CHECK(writer.error_json() == R"({"severity":"ERROR","code":"57014","message":"canceling statement",)"
                               R"("position":"7","constraint":"c1","routine":"rt"})");
  CHECK(feed('Z', "I"));
  CHECK_FALSE(feed('G', ""));  // CopyInResponse makes no sense to the writer
}

TEST_CASE("config: the http: section and users[].http_tokens", "[http-sql][config]") {
  config::Config defaults = config::parse_config("databases:\n  app: {}\n", {});
  CHECK(defaults.http.max_body_size == 10u << 20);
  CHECK(defaults.http.max_response_size == 10u << 20);
  CHECK(defaults.http.statement_timeout == 0ms);
  config::Config c = config::parse_config(
      "databases:\n  app: {}\n"
      "users:\n  - name: bot\n    password: x\n    http_tokens: [t1, t2]\n"
      "http:\n  max_body_size: 4096\n  max_response_size: 8192\n  max_queries_per_batch: 5\n"
      "  max_params_per_query: 10\n  statement_timeout: 250ms\n  cors_allowed_origins: ['*']\n"
      "  auth_cache_ttl: 5m\n  auth_cache_size: 0\n",
      {});
  CHECK(c.users[0].http_tokens == std::vector<std::string>{"t1", "t2"});
  CHECK(c.http.max_body_size == 4096);
  CHECK(c.http.max_response_size == 8192);
  CHECK(c.http.max_queries_per_batch == 5);
  CHECK(c.http.max_params_per_query == 10);
  CHECK(c.http.statement_timeout == 250ms);
  CHECK(c.http.cors_allowed_origins == std::vector<std::string>{"*"});
  CHECK(c.auth_cache_ttl == 300'000ms);  // the older names of the top-level keys
  CHECK(c.auth_cache_size == 0);
  CHECK_THROWS_WITH(config::parse_config("databases:\n  app: {}\nhttp:\n  max_body_size: 10\n", {}),
                    Catch::Matchers::StartsWith("http.max_body_size:"));
  CHECK_THROWS_WITH(config::parse_config("databases:\n  app: {}\nhttp:\n  body: 1\n", {}),
                    Catch::Matchers::StartsWith("http.body: unknown key"));
  CHECK_THROWS_WITH(
      config::parse_config(
          "databases:\n  app: {}\nusers:\n  - name: a\n    password: x\n    http_tokens: t\n", {}),
      Catch::Matchers::StartsWith("users[0].http_tokens:"));
  CHECK_THROWS_WITH(config::parse_config("databases:\n  app: {}\nusers:\n  - name: a\n    password: x\n"
                                         "    http_tokens: [t]\n  - name: b\n    password: y\n"
                                         "    http_tokens: [u, t]\n",
                                         {}),
                    Catch::Matchers::StartsWith("users[1].http_tokens[1]: the same token"));
}

TEST_CASE("the example config's http: values are the documented defaults", "[http-sql][config]") {
  const auto example_path = std::filesystem::path(__FILE__).parent_path() / "../../config/pgmux.example.yaml";
  const config::Config example = config::load_config_file(
      example_path.string(),
      [](const std::string& name) -> std::optional<std::string> { return "x-" + name; });
  const config::HttpSqlConfig defaults;
  CHECK(example.http.max_body_size == defaults.max_body_size);
  CHECK(example.http.max_response_size == defaults.max_response_size);
  CHECK(example.http.max_queries_per_batch == defaults.max_queries_per_batch);
  CHECK(example.http.max_params_per_query == defaults.max_params_per_query);
  CHECK(example.http.statement_timeout == defaults.statement_timeout);
  CHECK(example.http.cors_allowed_origins == defaults.cors_allowed_origins);
  CHECK(example.http.websocket_path == defaults.websocket_path);
  CHECK(example.http.tls == defaults.tls);
}

TEST_CASE(
    "config: http.websocket_path, and http.allow_cleartext_password as allow_plaintext_password's alias",
    "[websocket][config]") {
  config::Config defaults = config::parse_config("databases:\n  app: {}\n", {});
  CHECK(defaults.http.websocket_path == "/v2");
  CHECK_FALSE(defaults.allow_plaintext_password);
  config::Config c = config::parse_config(
      "databases:\n  app: {}\nhttp:\n  websocket_path: /pg/ws\n  allow_cleartext_password: true\n", {});
  CHECK(c.http.websocket_path == "/pg/ws");
  CHECK(c.allow_plaintext_password);
  CHECK(config::parse_config("databases:\n  app: {}\nallow_plaintext_password: true\n", {})
            .allow_plaintext_password);
  CHECK(config::parse_config("databases:\n  app: {}\nhttp:\n  websocket_path: \"\"\n", {})
            .http.websocket_path.empty());  // WebSocket off
  CHECK_THROWS_WITH(config::parse_config("databases:\n  app: {}\nhttp:\n  websocket_path: v2\n", {}),
                    Catch::Matchers::StartsWith("http.websocket_path: must start with '/'"));
  CHECK_THROWS_WITH(
      config::parse_config("databases:\n  app: {}\nhttp:\n  allow_cleartext_password: maybe\n", {}),
      Catch::Matchers::StartsWith("http.allow_cleartext_password: expected true or false"));
}

TEST_CASE("a caller's SET, LISTEN or PREPARE marks the backend as carrying session state", "[http-sql]") {
  for (const char* tag : {"SET", "LISTEN", "PREPARE", "LOAD"}) {
    std::string out;
    ResultJsonWriter writer(out, true, 0, 1, 1 << 20);
    Feed feed{writer};
    CHECK(feed('n', ""));
    CHECK(feed('C', cstr(tag)));
    CHECK(writer.left_session_state());
  }
  std::string out;
  ResultJsonWriter writer(out, true, 0, 1, 1 << 20);
  Feed feed{writer};
  CHECK(feed('n', ""));
  CHECK(feed('C', cstr("UPDATE 1")));
  CHECK_FALSE(writer.left_session_state());
}
