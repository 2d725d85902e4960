// Unit tests for the YAML config loader: defaults, every error class with its key path, ${VAR}, durations.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "pgmux/config/config.hpp"

using namespace pgmux::config;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Catch::Matchers::Equals;
using Catch::Matchers::StartsWith;

namespace {

// Tests never read the real environment, so they cannot pass or fail by accident of the shell.
EnvLookup fake_env(std::map<std::string, std::string> vars = {}) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

const std::string kOneDatabase = "databases:\n  app: {}\n";

Config parse(const std::string& yaml, const EnvLookup& env = fake_env()) {
  return parse_config(yaml, env);
}

// The message of the ConfigError that parsing throws, so failures print what was actually said.
std::string error_of(const std::string& yaml, const EnvLookup& env = fake_env()) {
  try {
    parse_config(yaml, env);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

std::string duration_error(const std::string& text) {
  try {
    parse_duration(text, "pool.query_wait_timeout");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

const std::filesystem::path kExample =
    std::filesystem::path(__FILE__).parent_path() / "../../config/pgmux.example.yaml";

const EnvLookup kExampleEnv =
    fake_env({{"APP_DB_PASSWORD", "app-secret"}, {"REPORTING_PASSWORD", "r-secret"}});

}  // namespace

TEST_CASE("the example file parses and says what it means", "[config]") {
  const Config c = load_config_file(kExample.string(), kExampleEnv);

  CHECK(c.listen.postgres.host == "127.0.0.1");
  CHECK(c.listen.postgres.port == 6432);
  REQUIRE(c.databases.size() == 2);

  const DatabaseConfig& app = c.databases.at("app");
  CHECK(app.name == "app");
  CHECK(app.host == "127.0.0.1");
  CHECK(app.port == 5432);
  CHECK(app.dbname == "app");
  CHECK(app.user == "app_owner");
  CHECK(app.password == "app-secret");
  CHECK(c.pool_size_for(app) == 20);
  CHECK(c.pool_mode_for(app) == PoolMode::session);

  const DatabaseConfig& reporting = c.databases.at("reporting");
  CHECK(reporting.dbname == "reporting");
  CHECK_FALSE(reporting.user);
  CHECK(c.pool_mode_for(reporting) == PoolMode::transaction);

  REQUIRE(c.users.size() == 2);
  CHECK_THAT(c.users[0].password, StartsWith("SCRAM-SHA-256$4096:"));
  CHECK(c.users[1].password == "r-secret");
}

TEST_CASE("the example file's values are the documented defaults", "[config]") {
  const Config example = load_config_file(kExample.string(), kExampleEnv);
  const Config defaults;

  CHECK(example.listen.postgres.host == defaults.listen.postgres.host);
  CHECK(example.listen.postgres.port == defaults.listen.postgres.port);
  CHECK(example.workers == defaults.workers);
  CHECK(example.tcp_defer_accept == defaults.tcp_defer_accept);
  CHECK(example.log_level == defaults.log_level);
  CHECK(example.log_format == defaults.log_format);
  CHECK(example.auth_type == defaults.auth_type);
  const PoolConfig& p = example.pool;
  const PoolConfig& d = defaults.pool;
  CHECK(p.mode == d.mode);
  CHECK(p.default_pool_size == d.default_pool_size);
  CHECK(p.max_client_conn == d.max_client_conn);
  CHECK(p.query_wait_timeout == d.query_wait_timeout);
  CHECK(p.server_idle_timeout == d.server_idle_timeout);
  CHECK(p.server_lifetime == d.server_lifetime);
  CHECK(p.server_connect_timeout == d.server_connect_timeout);
  CHECK(p.client_login_timeout == d.client_login_timeout);
  CHECK(p.client_idle_timeout == d.client_idle_timeout);
  CHECK(p.query_timeout == d.query_timeout);
  CHECK(p.server_reset_query == d.server_reset_query);
  CHECK(p.max_packet_size == d.max_packet_size);
  CHECK(p.max_db_client_connections == d.max_db_client_connections);
  CHECK(p.max_user_client_connections == d.max_user_client_connections);
  CHECK(p.client_connection_rate_per_ip == d.client_connection_rate_per_ip);
  CHECK(p.client_connection_burst_per_ip == d.client_connection_burst_per_ip);
  CHECK(example.auth_query == defaults.auth_query);
  CHECK(example.auth_user == defaults.auth_user);
  CHECK(example.http.max_header_size == defaults.http.max_header_size);
  CHECK(example.metrics.enabled == defaults.metrics.enabled);
  CHECK(example.allow_plaintext_password == defaults.allow_plaintext_password);
  CHECK(example.databases.at("app").sslmode == DatabaseConfig().sslmode);
}

TEST_CASE("absent keys take their defaults", "[config]") {
  const Config c = parse(kOneDatabase);

  CHECK(c.listen.postgres.host == "127.0.0.1");
  CHECK(c.listen.postgres.port == 6432);
  CHECK(c.workers == 0);
  CHECK(c.tcp_defer_accept);  // PgBouncer's default on Linux
  CHECK(c.log_level == "info");
  CHECK(c.log_format == "text");
  CHECK(c.auth_type == AuthType::scram_sha_256);
  CHECK(c.users.empty());
  CHECK(c.pool.mode == PoolMode::transaction);
  CHECK(c.pool.default_pool_size == 20);
  CHECK(c.pool.max_client_conn == 10000);
  CHECK(c.pool.query_wait_timeout == 120s);
  CHECK(c.pool.server_idle_timeout == 600s);
  CHECK(c.pool.server_lifetime == 3600s);
  CHECK(c.pool.server_connect_timeout == 15s);
  CHECK(c.pool.client_login_timeout == 60s);
  CHECK(c.pool.client_idle_timeout == 0s);
  CHECK(c.pool.query_timeout == 0s);
  CHECK(c.pool.server_reset_query == "DISCARD ALL");
  CHECK(c.pool.max_packet_size == 64u * 1024 * 1024);

  const DatabaseConfig& app = c.databases.at("app");
  CHECK(app.host == "127.0.0.1");
  CHECK(app.port == 5432);
  CHECK_FALSE(app.user);
  CHECK_FALSE(app.password);
  CHECK(c.pool_size_for(app) == 20);
  CHECK(c.pool_mode_for(app) == PoolMode::transaction);
}

TEST_CASE("every key is read into its field", "[config]") {
  const Config c = parse(R"(
listen: {postgres: "0.0.0.0:7000"}
workers: 8
tcp_defer_accept: false
log_level: debug
auth_type: md5
pool:
  mode: session
  default_pool_size: 5
  max_client_conn: 300
  query_wait_timeout: 250ms
  server_idle_timeout: 5m
  server_lifetime: 2h
  server_connect_timeout: 3
  client_login_timeout: 0
  client_idle_timeout: 90s
  query_timeout: 45s
  server_reset_query: ""
  max_packet_size: 1048576
databases:
  app:
    host: db.internal
    port: 6543
    dbname: app_prod
    pool_size: 7
    pool_mode: transaction
users:
  - {name: alice, password: md5abc}
)");
  CHECK(c.listen.postgres.host == "0.0.0.0");
  CHECK(c.listen.postgres.port == 7000);
  CHECK(c.workers == 8);
  CHECK_FALSE(c.tcp_defer_accept);
  CHECK(c.log_level == "debug");
  CHECK(c.auth_type == AuthType::md5);
  CHECK(c.pool.mode == PoolMode::session);
  CHECK(c.pool.default_pool_size == 5);
  CHECK(c.pool.max_client_conn == 300);
  CHECK(c.pool.query_wait_timeout == 250ms);
  CHECK(c.pool.server_idle_timeout == 5min);
  CHECK(c.pool.server_lifetime == 2h);
  CHECK(c.pool.server_connect_timeout == 3s);
  CHECK(c.pool.client_login_timeout == 0ms);
  CHECK(c.pool.client_idle_timeout == 90s);
  CHECK(c.pool.query_timeout == 45s);
  CHECK(c.pool.server_reset_query.empty());
  CHECK(c.pool.max_packet_size == 1048576u);
  const DatabaseConfig& app = c.databases.at("app");
  CHECK(app.host == "db.internal");
  CHECK(app.port == 6543);
  CHECK(app.dbname == "app_prod");
  CHECK(c.pool_size_for(app) == 7);
  CHECK(c.pool_mode_for(app) == PoolMode::transaction);
}

TEST_CASE("auth_type accepts each of its four names", "[config]") {
  CHECK(parse("auth_type: scram-sha-256\n" + kOneDatabase).auth_type == AuthType::scram_sha_256);
  CHECK(parse("auth_type: md5\n" + kOneDatabase).auth_type == AuthType::md5);
  CHECK(parse("auth_type: plain\n" + kOneDatabase).auth_type == AuthType::plain);
  CHECK(parse("auth_type: trust\n" + kOneDatabase).auth_type == AuthType::trust);
}

TEST_CASE("dbname defaults to the database's key", "[config]") {
  const Config c = parse("databases:\n  sales:\n    port: 5433\n  hr:\n");
  CHECK(c.databases.at("sales").name == "sales");
  CHECK(c.databases.at("sales").dbname == "sales");
  CHECK(c.databases.at("hr").dbname == "hr");  // a key with nothing after it is a database with all defaults
}

TEST_CASE("databases must have at least one entry", "[config]") {
  CHECK_THAT(error_of(""), StartsWith("databases: at least one database is required"));
  CHECK_THAT(error_of("workers: 2\n"), StartsWith("databases: at least one database is required"));
  CHECK_THAT(error_of("databases: {}\n"), StartsWith("databases: at least one database is required"));
  CHECK_THAT(error_of("databases:\n"), StartsWith("databases: at least one database is required"));
}

TEST_CASE("an unknown key is an error that names its path", "[config]") {
  CHECK_THAT(error_of("bogus: 1\n" + kOneDatabase), Equals("bogus: unknown key"));
  CHECK_THAT(error_of("pool:\n  bogus: 1\n" + kOneDatabase), Equals("pool.bogus: unknown key"));
  CHECK_THAT(error_of("listen:\n  admin: x\n" + kOneDatabase), Equals("listen.admin: unknown key"));
  CHECK_THAT(error_of("databases:\n  app:\n    hots: x\n"), Equals("databases.app.hots: unknown key"));
  CHECK_THAT(error_of(kOneDatabase + "users:\n  - {name: a, password: x}\n  - {name: b, pasword: x}\n"),
             Equals("users[1].pasword: unknown key"));
  // PgBouncer's spelling is not silently accepted where ours differs.
  CHECK_THAT(error_of("pool:\n  pool_mode: session\n" + kOneDatabase), Equals("pool.pool_mode: unknown key"));
}

TEST_CASE("a key given twice is an error", "[config]") {
  CHECK_THAT(error_of("pool:\n  mode: session\n  mode: transaction\n" + kOneDatabase),
             StartsWith("pool.mode: duplicate key"));
}

TEST_CASE("a value of the wrong type is an error that names its path", "[config]") {
  CHECK_THAT(error_of("pool:\n  default_pool_size: {a: 1}\n" + kOneDatabase),
             Equals("pool.default_pool_size: expected a value, got a map"));
  CHECK_THAT(error_of("pool:\n  default_pool_size: abc\n" + kOneDatabase),
             Equals("pool.default_pool_size: expected an integer, got \"abc\""));
  CHECK_THAT(error_of("pool:\n  max_client_conn: 1.5\n" + kOneDatabase),
             StartsWith("pool.max_client_conn: expected an integer"));
  CHECK_THAT(error_of("pool:\n  max_client_conn:\n" + kOneDatabase),
             StartsWith("pool.max_client_conn: expected a value, got nothing"));
  CHECK_THAT(error_of("databases:\n  app:\n    port: [5432]\n"),
             Equals("databases.app.port: expected a value, got a list"));
  CHECK_THAT(error_of("pool: 5\n" + kOneDatabase), Equals("pool: expected a map, got a scalar"));
  CHECK_THAT(error_of("databases: [app]\n"), Equals("databases: expected a map, got a list"));
  CHECK_THAT(error_of("databases:\n  app: 5\n"), Equals("databases.app: expected a map, got a scalar"));
  CHECK_THAT(error_of(kOneDatabase + "users: {name: a}\n"), Equals("users: expected a list, got a map"));
  CHECK_THAT(error_of(kOneDatabase + "users:\n  - alice\n"),
             Equals("users[0]: expected a map, got a scalar"));
  CHECK_THAT(error_of("- a\n- b\n"), StartsWith("config: expected a map at the top level"));
  CHECK_THAT(error_of("? [a, b]\n: 1\n" + kOneDatabase), Equals("config: keys must be plain names"));
  CHECK_THAT(error_of("pool:\n  ? {a: 1}\n  : 1\n" + kOneDatabase), Equals("pool: keys must be plain names"));
}

TEST_CASE("out-of-range numbers are errors that name their path", "[config]") {
  CHECK_THAT(error_of("pool:\n  default_pool_size: 0\n" + kOneDatabase),
             Equals("pool.default_pool_size: must be at least 1, got 0"));
  CHECK_THAT(error_of("pool:\n  max_client_conn: 0\n" + kOneDatabase),
             Equals("pool.max_client_conn: must be at least 1, got 0"));
  CHECK_THAT(error_of("pool:\n  max_client_conn: 99999999999999999999\n" + kOneDatabase),
             StartsWith("pool.max_client_conn: expected an integer"));
  CHECK_THAT(error_of("pool:\n  max_packet_size: 100\n" + kOneDatabase),
             StartsWith("pool.max_packet_size: must be between 1024 and 1073741824"));
  CHECK_THAT(error_of("workers: 1025\n" + kOneDatabase),
             Equals("workers: must be between 0 and 1024, got 1025"));
  CHECK_THAT(error_of("workers: -1\n" + kOneDatabase), Equals("workers: must be between 0 and 1024, got -1"));
  CHECK_THAT(error_of("databases:\n  app:\n    port: 0\n"),
             Equals("databases.app.port: must be between 1 and 65535, got 0"));
  CHECK_THAT(error_of("databases:\n  app:\n    port: 65536\n"),
             Equals("databases.app.port: must be between 1 and 65535, got 65536"));
  CHECK_THAT(error_of("databases:\n  app:\n    pool_size: 0\n"),
             Equals("databases.app.pool_size: must be at least 1, got 0"));
  CHECK(parse("workers: 1024\n" + kOneDatabase).workers == 1024);
  CHECK(parse("databases:\n  app:\n    port: 65535\n").databases.at("app").port == 65535);
}

TEST_CASE("bad enum values are errors that list the accepted ones", "[config]") {
  CHECK_THAT(error_of("pool:\n  mode: statement\n" + kOneDatabase),
             Equals("pool.mode: invalid value \"statement\" (expected transaction or session)"));
  CHECK_THAT(error_of("databases:\n  app:\n    pool_mode: Session\n"),
             StartsWith("databases.app.pool_mode: invalid value \"Session\""));
  CHECK_THAT(error_of("auth_type: scram\n" + kOneDatabase),
             Equals("auth_type: invalid value \"scram\" (expected scram-sha-256, md5, plain or trust)"));
  CHECK_THAT(error_of("log_level: verbose\n" + kOneDatabase),
             Equals("log_level: invalid value \"verbose\" (expected debug, info, warning or error)"));
  CHECK_THAT(error_of("log_format: logfmt\n" + kOneDatabase),
             Equals("log_format: invalid value \"logfmt\" (expected text or json)"));
}

TEST_CASE("empty names and hosts are errors", "[config]") {
  CHECK_THAT(error_of("databases:\n  app:\n    host: \"\"\n"),
             Equals("databases.app.host: must not be empty"));
  CHECK_THAT(error_of("databases:\n  app:\n    dbname: \"\"\n"),
             Equals("databases.app.dbname: must not be empty"));
  CHECK_THAT(error_of("databases:\n  \"\": {}\n"), StartsWith("databases: database names must not be empty"));
}

TEST_CASE("a NUL character in a key or value is an error that shows where it is", "[config]") {
  // YAML's "\0" escape. Before this was refused, the error for an unknown "mode\0x" said "pool.mode", a valid
  // key, because the message was cut at the NUL; a database or user name with one was accepted.
  CHECK_THAT(error_of("pool:\n  \"mode\\0x\": session\n" + kOneDatabase),
             Equals("pool: key \"mode\\0x\" contains a NUL character"));
  CHECK_THAT(error_of("databases:\n  \"ap\\0p\": {}\n"),
             Equals("databases: key \"ap\\0p\" contains a NUL character"));
  CHECK_THAT(error_of("\"\\0\": 1\n" + kOneDatabase), Equals("config: key \"\\0\" contains a NUL character"));
  CHECK_THAT(error_of("databases:\n  app:\n    host: \"db\\0.evil\"\n"),
             Equals("databases.app.host: must not contain a NUL character"));
  CHECK_THAT(error_of(kOneDatabase + "users:\n  - {name: \"a\\0b\", password: x}\n"),
             Equals("users[0].name: must not contain a NUL character"));
  CHECK_THAT(error_of("pool:\n  server_reset_query: \"DISCARD ALL\\0SELECT 1\"\n" + kOneDatabase),
             Equals("pool.server_reset_query: must not contain a NUL character"));
}

TEST_CASE("durations take ms, s, m, h or bare seconds", "[config]") {
  CHECK(parse_duration("250ms", "p") == 250ms);
  CHECK(parse_duration("30s", "p") == 30s);
  CHECK(parse_duration("5m", "p") == 5min);
  CHECK(parse_duration("1h", "p") == 1h);
  CHECK(parse_duration("45", "p") == 45s);
  CHECK(parse_duration("0", "p") == 0ms);
  CHECK(parse_duration("0ms", "p") == 0ms);
}

TEST_CASE("a bad duration is an error that names its path and shows the accepted forms", "[config]") {
  CHECK_THAT(
      duration_error("12 parsecs"),
      Equals("pool.query_wait_timeout: invalid duration \"12 parsecs\" (use e.g. 500ms, 30s, 5m, 1h)"));
  for (const char* bad : {"", "s", "-5s", "1.5s", "30 s", "30sec", "5d", "1H", "ms10"}) {
    CAPTURE(bad);
    CHECK_THAT(duration_error(bad), StartsWith("pool.query_wait_timeout: invalid duration"));
  }
  CHECK_THAT(duration_error("99999999999999999999h"), StartsWith("pool.query_wait_timeout: duration"));
  CHECK_THAT(duration_error("9999999999999999h"), Contains("too large"));
}

TEST_CASE("bad durations in the file name the key", "[config]") {
  CHECK_THAT(
      error_of("pool:\n  query_wait_timeout: 12 parsecs\n" + kOneDatabase),
      Equals("pool.query_wait_timeout: invalid duration \"12 parsecs\" (use e.g. 500ms, 30s, 5m, 1h)"));
  CHECK_THAT(error_of("pool:\n  server_lifetime: forever\n" + kOneDatabase),
             StartsWith("pool.server_lifetime: invalid duration \"forever\""));
  CHECK_THAT(error_of("pool:\n  server_connect_timeout: 0\n" + kOneDatabase),
             Equals("pool.server_connect_timeout: must be greater than 0"));
}

TEST_CASE("${VAR} is replaced from the environment in strings and numbers", "[config]") {
  const EnvLookup env = fake_env({{"DB_HOST", "db1"}, {"DB_PORT", "6000"}, {"PW", "s3cret"}, {"EMPTY", ""}});
  const Config c = parse(R"(
pool:
  default_pool_size: ${DB_PORT}
  query_wait_timeout: ${DB_PORT}ms
databases:
  app:
    host: ${DB_HOST}.internal
    port: ${DB_PORT}
    password: "pre-${PW}-${PW}${EMPTY}-post"
)",
                         env);
  const DatabaseConfig& app = c.databases.at("app");
  CHECK(app.host == "db1.internal");
  CHECK(app.port == 6000);
  CHECK(app.password == "pre-s3cret-s3cret-post");
  CHECK(c.pool.default_pool_size == 6000);
  CHECK(c.pool.query_wait_timeout == 6000ms);
}

TEST_CASE("only ${NAME} is substituted; other dollar signs are literal", "[config]") {
  const EnvLookup env = fake_env({{"X", "x"}, {"LOOP", "${X}"}});
  const auto password = [&](const std::string& quoted) {
    return *parse("databases:\n  app:\n    password: " + quoted + "\n", env).databases.at("app").password;
  };
  CHECK(password("'$X'") == "$X");
  CHECK(password("'$$'") == "$$");
  CHECK(password("'${'") == "${");
  CHECK(password("'${X'") == "${X");
  CHECK(password("'${}'") == "${}");
  CHECK(password("'${not a name}'") == "${not a name}");
  CHECK(password("'SCRAM-SHA-256$4096:c2FsdA==$a:b'") == "SCRAM-SHA-256$4096:c2FsdA==$a:b");
  CHECK(password("'${LOOP}'") == "${X}");  // values are not expanded again
}

TEST_CASE("an unset variable is an error naming the key and the variable", "[config]") {
  CHECK_THAT(error_of("databases:\n  app:\n    password: ${APP_DB_PASSWORD}\n"),
             Equals("databases.app.password: environment variable APP_DB_PASSWORD is not set"));
  CHECK_THAT(error_of("workers: ${WORKERS}\n" + kOneDatabase),
             Equals("workers: environment variable WORKERS is not set"));
}

TEST_CASE("process_environment reads the real environment", "[config]") {
  ::setenv("PGMUX_CONFIG_TEST_VAR", "from-env", 1);
  ::unsetenv("PGMUX_CONFIG_TEST_UNSET");
  const EnvLookup env = process_environment();
  CHECK(env("PGMUX_CONFIG_TEST_VAR") == "from-env");
  CHECK_FALSE(env("PGMUX_CONFIG_TEST_UNSET"));
}

TEST_CASE("listen.postgres takes host:port, [IPv6]:port or a host name", "[config]") {
  const auto listen = [](const std::string& text) {
    return parse("listen:\n  postgres: \"" + text + "\"\n" + kOneDatabase).listen.postgres;
  };
  CHECK(listen("0.0.0.0:5000").host == "0.0.0.0");
  CHECK(listen("0.0.0.0:5000").port == 5000);
  CHECK(listen("[::1]:6432").host == "::1");
  CHECK(listen("[::1]:6432").port == 6432);
  CHECK(listen("[::]:6433").host == "::");
  CHECK(listen("[fe80::1%eth0]:6432").host == "fe80::1%eth0");
  CHECK(listen("localhost:6432").host == "localhost");
}

TEST_CASE("a bad listen address is an error naming listen.postgres", "[config]") {
  const auto error = [](const std::string& text) {
    return error_of("listen:\n  postgres: \"" + text + "\"\n" + kOneDatabase);
  };
  CHECK_THAT(error("127.0.0.1"), StartsWith("listen.postgres: missing port"));
  CHECK_THAT(error("127.0.0.1:"), StartsWith("listen.postgres: missing port"));
  CHECK_THAT(error(":6432"), StartsWith("listen.postgres: missing host"));
  CHECK_THAT(error("::1:6432"), StartsWith("listen.postgres: IPv6 addresses need brackets"));
  CHECK_THAT(error("[::1]"), StartsWith("listen.postgres: expected \"[address]:port\""));
  CHECK_THAT(error("[::1:6432"), StartsWith("listen.postgres: expected \"[address]:port\""));
  CHECK_THAT(error("[nope]:6432"), StartsWith("listen.postgres: \"nope\" is not an IPv6 address"));
  CHECK_THAT(error("[]:6432"), StartsWith("listen.postgres: \"\" is not an IPv6 address"));
  CHECK_THAT(error("127.0.0.1:70000"), Equals("listen.postgres: must be between 1 and 65535, got 70000"));
  CHECK_THAT(error("127.0.0.1:http"), StartsWith("listen.postgres: expected an integer"));
}

TEST_CASE("users are listed in order and found by name", "[config]") {
  const Config c =
      parse(kOneDatabase + "users:\n  - {name: alice, password: a}\n  - {name: bob, password: b}\n");
  REQUIRE(c.users.size() == 2);
  CHECK(c.users[0].name == "alice");
  REQUIRE(c.find_user("bob") != nullptr);
  CHECK(c.find_user("bob")->password == "b");
  CHECK(c.find_user("carol") == nullptr);
  CHECK(c.find_user("") == nullptr);
}

TEST_CASE("users may be empty", "[config]") {
  CHECK(parse(kOneDatabase + "users: []\n").users.empty());
  CHECK(parse(kOneDatabase + "users:\n").users.empty());
}

TEST_CASE("duplicate user names are an error", "[config]") {
  CHECK_THAT(
      error_of(
          kOneDatabase +
          "users:\n  - {name: a, password: x}\n  - {name: b, password: y}\n  - {name: a, password: z}\n"),
      Equals("users[2].name: duplicate user \"a\" (also users[0])"));
}

TEST_CASE("a user needs a name, and a password unless auth_type is trust", "[config]") {
  CHECK_THAT(error_of(kOneDatabase + "users:\n  - {password: x}\n"), Equals("users[0].name: is required"));
  CHECK_THAT(error_of(kOneDatabase + "users:\n  - {name: \"\", password: x}\n"),
             Equals("users[0].name: must not be empty"));
  CHECK_THAT(error_of(kOneDatabase + "users:\n  - {name: a, password: x}\n  - {name: b}\n"),
             StartsWith("users[1].password: is required unless auth_type is trust"));
  CHECK_THAT(error_of("auth_type: plain\n" + kOneDatabase + "users:\n  - {name: a, password: \"\"}\n"),
             StartsWith("users[0].password: is required unless auth_type is trust"));
  const Config trusted = parse("auth_type: trust\n" + kOneDatabase + "users:\n  - {name: a}\n");
  CHECK(trusted.users.at(0).password.empty());
}

TEST_CASE("a YAML syntax error reports yaml-cpp's line and column", "[config]") {
  const std::string message = error_of("pool:\n  mode: [transaction\n" + kOneDatabase);
  CHECK_THAT(message, StartsWith("config: "));
  CHECK_THAT(message, Contains("line"));
  CHECK_THAT(message, Contains("column"));
}

TEST_CASE("load_config_file reads a file and reports one it cannot read", "[config]") {
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("pgmux_config_test_" + std::to_string(::getpid()) + ".yaml");
  {
    std::ofstream out(path);
    out << "workers: 3\n" << kOneDatabase;
  }
  CHECK(load_config_file(path.string(), fake_env()).workers == 3);
  std::filesystem::remove(path);

  try {
    load_config_file(path.string(), fake_env());
    FAIL("no error for a missing file");
  } catch (const ConfigError& e) {
    CHECK_THAT(e.what(), Equals("config: cannot read " + path.string() + ": No such file or directory"));
  }
  try {
    load_config_file(std::filesystem::temp_directory_path().string(), fake_env());
    FAIL("no error for a directory");
  } catch (const ConfigError& e) {
    CHECK_THAT(e.what(), StartsWith("config: cannot read "));
  }
}

TEST_CASE("admin_users must be configured users", "[config]") {
  const std::string base = "databases:\n  app: {}\nusers:\n  - name: app\n    password: secret\n";
  auto config = pgmux::config::parse_config(base + "admin_users: [app]\n");
  REQUIRE(config.admin_users == std::vector<std::string>{"app"});
  try {
    pgmux::config::parse_config(base + "admin_users: [root]\n");
    FAIL("expected an error");
  } catch (const pgmux::config::ConfigError& e) {
    CHECK(std::string(e.what()).starts_with("admin_users[0]: \"root\" is not listed in users"));
  }
}

TEST_CASE("metrics.enabled turns per-message counting off, and is on by default", "[config]") {
  CHECK(parse(kOneDatabase).metrics.enabled);
  CHECK_FALSE(parse("metrics:\n  enabled: false\n" + kOneDatabase).metrics.enabled);
  CHECK(parse("metrics: {enabled: true}\n" + kOneDatabase).metrics.enabled);
  CHECK_THAT(error_of("metrics:\n  enabled: maybe\n" + kOneDatabase), StartsWith("metrics.enabled: "));
  CHECK_THAT(error_of("metrics:\n  enable: false\n" + kOneDatabase), Equals("metrics.enable: unknown key"));
}

TEST_CASE("listen.metrics is an optional address of its own", "[config]") {
  CHECK_FALSE(parse(kOneDatabase).listen.metrics);
  const Config c = parse("listen:\n  metrics: \"0.0.0.0:9127\"\n" + kOneDatabase);
  REQUIRE(c.listen.metrics);
  CHECK(c.listen.metrics->host == "0.0.0.0");
  CHECK(c.listen.metrics->port == 9127);
  CHECK_THAT(error_of("listen:\n  metrics: nowhere\n" + kOneDatabase), StartsWith("listen.metrics: "));
}

TEST_CASE("client limits, the per-address connection rate and auth_query default to off", "[config]") {
  const Config c = parse(kOneDatabase + "users:\n  - {name: alice, password: x}\n");
  CHECK(c.pool.max_db_client_connections == 0);
  CHECK(c.pool.max_user_client_connections == 0);
  CHECK(c.max_db_clients(c.databases.at("app")) == 0);
  CHECK(c.max_user_clients("alice") == 0);
  CHECK(c.pool.client_connection_rate_per_ip == 0);
  CHECK(c.pool.client_connection_burst_per_ip == 20);
  CHECK_FALSE(c.auth_user);
  CHECK_FALSE(c.auth_user_for(c.databases.at("app")));
  CHECK(c.auth_query == "SELECT usename, passwd FROM pg_shadow WHERE usename=$1");
  CHECK(c.http.max_header_size == 16384u);
}

TEST_CASE("client limits and auth_user are read globally and overridden per database and per user",
          "[config]") {
  const Config c = parse(R"(
auth_user: finder
auth_query: SELECT u, p FROM my_users WHERE u = $1
pool:
  max_db_client_connections: 100
  max_user_client_connections: 10
  client_connection_rate_per_ip: 2.5
  client_connection_burst_per_ip: 5
databases:
  app: {max_db_client_connections: 3, auth_user: other_finder}
  plain: {}
users:
  - {name: finder, password: f}
  - {name: other_finder, password: g}
  - {name: alice, password: x, max_user_client_connections: 2}
http:
  max_header_size: 4096
)");
  CHECK(c.pool.client_connection_rate_per_ip == 2.5);
  CHECK(c.pool.client_connection_burst_per_ip == 5);
  CHECK(c.max_db_clients(c.databases.at("app")) == 3);
  CHECK(c.max_db_clients(c.databases.at("plain")) == 100);
  CHECK(c.max_user_clients("alice") == 2);
  CHECK(c.max_user_clients("finder") == 10);
  CHECK(c.max_user_clients("not-listed") == 10);
  CHECK(c.auth_user_for(c.databases.at("app")) == "other_finder");
  CHECK(c.auth_user_for(c.databases.at("plain")) == "finder");
  CHECK(c.auth_query == "SELECT u, p FROM my_users WHERE u = $1");
  CHECK(c.http.max_header_size == 4096u);
}

TEST_CASE("bad limit and auth_query values are errors naming their key", "[config]") {
  CHECK_THAT(error_of("pool: {max_db_client_connections: -1}\n" + kOneDatabase),
             StartsWith("pool.max_db_client_connections: must be"));
  CHECK_THAT(error_of("pool: {client_connection_rate_per_ip: fast}\n" + kOneDatabase),
             StartsWith("pool.client_connection_rate_per_ip: expected a number"));
  CHECK_THAT(error_of("pool: {client_connection_rate_per_ip: -1}\n" + kOneDatabase),
             StartsWith("pool.client_connection_rate_per_ip: expected a number"));
  CHECK_THAT(error_of("pool: {client_connection_burst_per_ip: 0}\n" + kOneDatabase),
             StartsWith("pool.client_connection_burst_per_ip: must be"));
  CHECK_THAT(error_of("databases:\n  app: {max_db_client_connections: x}\n"),
             StartsWith("databases.app.max_db_client_connections: expected an integer"));
  CHECK_THAT(error_of(kOneDatabase + "users:\n  - {name: a, password: x, max_user_client_connections: -2}\n"),
             StartsWith("users[0].max_user_client_connections: must be"));
  CHECK_THAT(error_of("auth_user: ghost\n" + kOneDatabase),
             StartsWith("auth_user: \"ghost\" is not listed in users"));
  CHECK_THAT(error_of("databases:\n  app: {auth_user: ghost}\n"),
             StartsWith("databases.app.auth_user: \"ghost\" is not listed in users"));
  CHECK_THAT(error_of("auth_query: SELECT 1\n" + kOneDatabase),
             StartsWith("auth_query: must take the user name as $1"));
  CHECK_THAT(error_of("http: {max_header_size: 10}\n" + kOneDatabase),
             StartsWith("http.max_header_size: must be"));
}

// --- TLS: the tls: section, databases' sslmode, allow_plaintext_password ---
namespace {

// A file that exists (the config checks that named files can be read; their contents are OpenSSL's
// business, when pgmux starts or reloads).
struct ScratchFile {
  std::string path;
  ScratchFile() {
    char name[] = "/tmp/pgmux-config-test-XXXXXX";
    int fd = mkstemp(name);
    REQUIRE(fd >= 0);
    close(fd);
    path = name;
  }
  ~ScratchFile() { std::remove(path.c_str()); }
};

Config parse_tls(const std::string& yaml) {
  return parse_config("databases:\n  app: {}\n" + yaml, fake_env());
}

}  // namespace

TEST_CASE("tls: off by default; with a certificate, mode allow unless told otherwise", "[config][tls]") {
  ScratchFile cert, key, ca;
  Config defaults = parse_tls("");
  CHECK_FALSE(defaults.tls.enabled());
  CHECK(defaults.tls.mode == TlsMode::disable);
  CHECK_FALSE(defaults.http.tls);
  CHECK_FALSE(defaults.allow_plaintext_password);
  CHECK(defaults.databases.at("app").sslmode == SslMode::disable);

  const std::string files = "tls:\n  cert_file: " + cert.path + "\n  key_file: " + key.path + "\n";
  Config on = parse_tls(files);
  CHECK(on.tls.enabled());
  CHECK(on.tls.mode == TlsMode::allow);
  CHECK(on.tls.client_cert == ClientCertMode::none);
  CHECK(parse_tls(files + "  mode: require\n").tls.mode == TlsMode::require);
  CHECK(parse_tls(files + "  mode: disable\n").tls.mode == TlsMode::disable);
  Config full =
      parse_tls(files + "  mode: require\n  ca_file: " + ca.path +
                "\n  client_cert: verify-full\nhttp:\n  tls: true\nallow_plaintext_password: true\n");
  CHECK(full.tls.client_cert == ClientCertMode::verify_full);
  CHECK(full.tls.ca_file == ca.path);
  CHECK(full.http.tls);
  CHECK(full.allow_plaintext_password);
}

TEST_CASE("tls: errors name the key", "[config][tls]") {
  ScratchFile cert, key;
  const std::string files = "tls:\n  cert_file: " + cert.path + "\n  key_file: " + key.path + "\n";
  CHECK_THROWS_WITH(parse_tls("tls:\n  cert_file: /nonexistent/server.crt\n"),
                    StartsWith("tls.cert_file: cannot read /nonexistent/server.crt"));
  CHECK_THROWS_WITH(parse_tls("tls:\n  cert_file: " + cert.path + "\n"), StartsWith("tls.key_file:"));
  CHECK_THROWS_WITH(parse_tls("tls:\n  mode: require\n"), StartsWith("tls.mode: allow and require need"));
  CHECK_THROWS_WITH(parse_tls(files + "  mode: sometimes\n"), StartsWith("tls.mode: invalid value"));
  CHECK_THROWS_WITH(parse_tls(files + "  mode: require\n  client_cert: verify-full\n"),
                    StartsWith("tls.ca_file: is required"));
  CHECK_THROWS_WITH(parse_tls(files + "  client_cert: maybe\n"),
                    StartsWith("tls.client_cert: invalid value"));
  CHECK_THROWS_WITH(parse_tls("http:\n  tls: true\n"), StartsWith("http.tls: needs tls.cert_file"));
  CHECK_THROWS_WITH(parse_tls(files + "  bogus: 1\n"), StartsWith("tls.bogus: unknown key"));
}

TEST_CASE("databases: sslmode and its files, as libpq names them", "[config][tls]") {
  ScratchFile root, cert, key;
  auto db = [](const std::string& entries) {
    return parse_config("databases:\n  app:\n" + entries, fake_env()).databases.at("app");
  };
  for (const auto& [text, mode] : std::vector<std::pair<std::string, SslMode>>{
           {"disable", SslMode::disable}, {"prefer", SslMode::prefer}, {"require", SslMode::require}})
    CHECK(db("    sslmode: " + text + "\n").sslmode == mode);
  auto full = db("    sslmode: verify-full\n    sslrootcert: " + root.path + "\n    sslcert: " + cert.path +
                 "\n    sslkey: " + key.path + "\n");
  CHECK(full.sslmode == SslMode::verify_full);
  CHECK(full.sslrootcert == root.path);
  CHECK(db("    sslmode: verify-ca\n    sslrootcert: " + root.path + "\n").sslmode == SslMode::verify_ca);
  CHECK_THROWS_WITH(db("    sslmode: verify-ca\n"), StartsWith("databases.app.sslrootcert: is required"));
  CHECK_THROWS_WITH(db("    sslmode: allow-ish\n"), StartsWith("databases.app.sslmode: invalid value"));
  CHECK_THROWS_WITH(db("    sslcert: " + cert.path + "\n"), StartsWith("databases.app.sslkey:"));
  CHECK_THROWS_WITH(db("    sslrootcert: /nonexistent\n"),
                    StartsWith("databases.app.sslrootcert: cannot read"));
}
