// Loads pgmux.yaml into a Config, rejecting anything unknown or out of range with the key's path.
#include "pgmux/config/config.hpp"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>

namespace pgmux::config {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw ConfigError(path + ": " + what);
}

const char* kind_of(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    default:
      return "nothing";
  }
}

bool is_env_name(const std::string& name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  for (char c : name) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

// Replaces each "${NAME}"; any other "$" text (an unclosed "${", "${not a name}") is kept literally so that
// passwords containing "$" need no escaping. Substituted values are not scanned again.
std::string expand_env(const std::string& text, const std::string& path, const EnvLookup& env) {
  std::string out;
  std::size_t pos = 0;
  while (true) {
    const std::size_t open = text.find("${", pos);
    const std::size_t close = open == std::string::npos ? open : text.find('}', open + 2);
    if (close == std::string::npos) break;
    const std::string name = text.substr(open + 2, close - open - 2);
    if (!is_env_name(name)) {
      out.append(text, pos, open + 2 - pos);
      pos = open + 2;
      continue;
    }
    const std::optional<std::string> value = env ? env(name) : std::nullopt;
    if (!value) fail(path, "environment variable " + name + " is not set");
    out.append(text, pos, open - pos);
    out += *value;
    pos = close + 1;
  }
  out.append(text, pos);
  return out;
}

// YAML's "\0" escape puts a NUL in a string. No value or name of ours can hold one: it would cut a host name,
// a password or a database name short wherever it meets a C string, and misframe a query sent to Postgres.
bool has_nul(const std::string& text) {
  return text.find('\0') != std::string::npos;
}

// The text with each NUL spelled "\0", for an error message that must not be cut short by one.
std::string visible(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\0')
      out += "\\0";
    else
      out += c;
  }
  return out;
}

// Every leaf goes through here, so ${VAR} works for numbers and enums as well as strings.
std::string scalar(const YAML::Node& node, const std::string& path, const EnvLookup& env) {
  if (!node.IsScalar()) fail(path, std::string("expected a value, got ") + kind_of(node));
  if (has_nul(node.Scalar())) fail(path, "must not contain a NUL character");
  return expand_env(node.Scalar(), path, env);
}

std::string non_empty(const YAML::Node& node, const std::string& path, const EnvLookup& env) {
  std::string text = scalar(node, path, env);
  if (text.empty()) fail(path, "must not be empty");
  return text;
}

long long integer_text(const std::string& text, const std::string& path, long long min, long long max) {
  long long value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    fail(path, "expected an integer, got \"" + text + "\"");
  }
  if (value < min || value > max) {
    const std::string range = max == INT_MAX
                                  ? "at least " + std::to_string(min)
                                  : "between " + std::to_string(min) + " and " + std::to_string(max);
    fail(path, "must be " + range + ", got " + text);
  }
  return value;
}

long long integer(const YAML::Node& node, const std::string& path, const EnvLookup& env, long long min,
                  long long max) {
  return integer_text(scalar(node, path, env), path, min, max);
}

std::uint16_t port(const YAML::Node& node, const std::string& path, const EnvLookup& env) {
  return static_cast<std::uint16_t>(integer(node, path, env, 1, 65535));
}

Duration duration(const YAML::Node& node, const std::string& path, const EnvLookup& env) {
  return parse_duration(scalar(node, path, env), path);
}

PoolMode pool_mode(const YAML::Node& node, const std::string& path, const EnvLookup& env) {
  const std::string text = scalar(node, path, env);
  if (text == "transaction") return PoolMode::transaction;
  if (text == "session") return PoolMode::session;
  fail(path, "invalid value \"" + text + "\" (expected transaction or session)");
}

AuthType auth_type(const YAML::Node& node, const std::string& path, const EnvLookup& env) {
  const std::string text = scalar(node, path, env);
  if (text == "scram-sha-256") return AuthType::scram_sha_256;
  if (text == "md5") return AuthType::md5;
  if (text == "plain") return AuthType::plain;
  if (text == "trust") return AuthType::trust;
  fail(path, "invalid value \"" + text + "\" (expected scram-sha-256, md5, plain or trust)");
}

std::string log_level(const YAML::Node& node, const std::string& path, const EnvLookup& env) {
  std::string text = scalar(node, path, env);
  if (text != "debug" && text != "info" && text != "warning" && text != "error") {
    fail(path, "invalid value \"" + text + "\" (expected debug, info, warning or error)");
  }
  return text;
}

// "host:port" or "[ipv6]:port"; a bare IPv6 address is refused because its last group would read as the port.
Endpoint endpoint(const YAML::Node& node, const std::string& path, const EnvLookup& env) {
  const std::string text = scalar(node, path, env);
  const std::string usage = " (use host:port, or [address]:port for IPv6)";
  Endpoint out;
  std::string port_text;
  if (!text.empty() && text[0] == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      fail(path, "expected \"[address]:port\", got \"" + text + "\"");
    }
    out.host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
    // A zone ("fe80::1%eth0") is legal in an address but not for inet_pton, so check the address part only.
    const std::string address = out.host.substr(0, out.host.find('%'));
    in6_addr parsed{};
    if (inet_pton(AF_INET6, address.c_str(), &parsed) != 1) {
      fail(path, "\"" + out.host + "\" is not an IPv6 address");
    }
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string::npos) fail(path, "missing port in \"" + text + "\"" + usage);
    out.host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (out.host.find(':') != std::string::npos) {
      fail(path, "IPv6 addresses need brackets, e.g. \"[::1]:6432\", got \"" + text + "\"");
    }
  }
  if (out.host.empty()) fail(path, "missing host in \"" + text + "\"" + usage);
  if (port_text.empty()) fail(path, "missing port in \"" + text + "\"" + usage);
  out.port = static_cast<std::uint16_t>(integer_text(port_text, path, 1, 65535));
  return out;
}

// Calls on_entry(key, value, path) for each entry of a map; on_entry returns false for keys it does not know.
// Null (a key with nothing after it) counts as an empty map. yaml-cpp keeps both copies of a duplicate key,
// and which one wins would be an accident, so duplicates are refused.
template <class OnEntry>
void for_each_entry(const YAML::Node& map, const std::string& path, OnEntry&& on_entry) {
  if (map.IsNull()) return;
  if (!map.IsMap()) fail(path, std::string("expected a map, got ") + kind_of(map));
  std::set<std::string> seen;
  for (const auto& entry : map) {
    if (!entry.first.IsScalar()) fail(path.empty() ? "config" : path, "keys must be plain names");
    const std::string& key = entry.first.Scalar();
    if (has_nul(key))
      fail(path.empty() ? "config" : path, "key \"" + visible(key) + "\" contains a NUL character");
    const std::string key_path = path.empty() ? key : path + "." + key;
    if (!seen.insert(key).second) fail(key_path, "duplicate key");
    if (!on_entry(key, entry.second, key_path)) fail(key_path, "unknown key");
  }
}

// A rate per second: a plain non-negative number, fractions allowed ("0.5": one every two seconds).
double rate(const YAML::Node& node, const std::string& path, const EnvLookup& env) {
  const std::string text = scalar(node, path, env);
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !(value >= 0) || value > 1e9)
    fail(path, "expected a number of connections per second between 0 and 1000000000, got \"" + text + "\"");
  return value;
}

// A file named in the config must exist and be readable now, so that a typo fails --check-config and a
// reload instead of the first connection that needs it. (Its contents are checked where it is loaded.)
std::string readable_file(const YAML::Node& node, const std::string& path, const EnvLookup& env) {
  std::string name = non_empty(node, path, env);
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(name.c_str(), "rb"), &std::fclose);
  if (!file) fail(path, "cannot read " + name + ": " + std::strerror(errno));
  return name;
}

SslMode ssl_mode(const YAML::Node& node, const std::string& path, const EnvLookup& env) {
  const std::string text = scalar(node, path, env);
  if (text == "disable") return SslMode::disable;
  if (text == "prefer") return SslMode::prefer;
  if (text == "require") return SslMode::require;
  if (text == "verify-ca") return SslMode::verify_ca;
  if (text == "verify-full") return SslMode::verify_full;
  fail(path, "invalid value \"" + text + "\" (expected disable, prefer, require, verify-ca or verify-full)");
}

TlsMode tls_mode(const YAML::Node& node, const std::string& path, const EnvLookup& env) {
  const std::string text = scalar(node, path, env);
  if (text == "disable") return TlsMode::disable;
  if (text == "allow") return TlsMode::allow;
  if (text == "require") return TlsMode::require;
  fail(path, "invalid value \"" + text + "\" (expected disable, allow or require)");
}

ClientCertMode client_cert_mode(const YAML::Node& node, const std::string& path, const EnvLookup& env) {
  const std::string text = scalar(node, path, env);
  if (text == "none") return ClientCertMode::none;
  if (text == "verify-ca") return ClientCertMode::verify_ca;
  if (text == "verify-full") return ClientCertMode::verify_full;
  fail(path, "invalid value \"" + text + "\" (expected none, verify-ca or verify-full)");
}

void read_tls(const YAML::Node& node, const EnvLookup& env, TlsConfig& tls, bool& has_mode) {
  for_each_entry(node, "tls", [&](const std::string& key, const YAML::Node& value, const std::string& path) {
    if (key == "cert_file") {
      tls.cert_file = readable_file(value, path, env);
    } else if (key == "key_file") {
      tls.key_file = readable_file(value, path, env);
    } else if (key == "ca_file") {
      tls.ca_file = readable_file(value, path, env);
    } else if (key == "mode") {
      tls.mode = tls_mode(value, path, env);
      has_mode = true;
    } else if (key == "client_cert") {
      tls.client_cert = client_cert_mode(value, path, env);
    } else {
      return false;
    }
    return true;
  });
}

void check_tls(Config& config, bool has_mode) {
  TlsConfig& tls = config.tls;
  if (tls.cert_file.empty() != tls.key_file.empty())
    fail(tls.cert_file.empty() ? "tls.cert_file" : "tls.key_file",
         "tls.cert_file and tls.key_file go together");
  if (!has_mode && tls.enabled()) tls.mode = TlsMode::allow;
  if (tls.mode != TlsMode::disable && !tls.enabled())
    fail("tls.mode", "allow and require need tls.cert_file and tls.key_file");
  if (tls.client_cert != ClientCertMode::none && tls.ca_file.empty())
    fail("tls.ca_file", "is required with tls.client_cert verify-ca or verify-full");
  if (tls.client_cert != ClientCertMode::none && tls.mode != TlsMode::require)
    fail("tls.client_cert", "needs tls.mode: require (a plaintext client presents no certificate)");
  if (config.http.tls && !tls.enabled()) fail("http.tls", "needs tls.cert_file and tls.key_file");
}

void read_pool(const YAML::Node& node, const EnvLookup& env, PoolConfig& pool) {
  for_each_entry(node, "pool", [&](const std::string& key, const YAML::Node& value, const std::string& path) {
    if (key == "mode") {
      pool.mode = pool_mode(value, path, env);
    } else if (key == "default_pool_size") {
      pool.default_pool_size = static_cast<int>(integer(value, path, env, 1, INT_MAX));
    } else if (key == "max_client_conn") {
      pool.max_client_conn = static_cast<int>(integer(value, path, env, 1, INT_MAX));
    } else if (key == "query_wait_timeout") {
      pool.query_wait_timeout = duration(value, path, env);
    } else if (key == "server_idle_timeout") {
      pool.server_idle_timeout = duration(value, path, env);
    } else if (key == "server_lifetime") {
      pool.server_lifetime = duration(value, path, env);
    } else if (key == "server_connect_timeout") {
      pool.server_connect_timeout = duration(value, path, env);
      // Unlike the other timeouts 0 cannot mean "never": a hung connect would hold a pool slot forever.
      if (pool.server_connect_timeout.count() == 0) fail(path, "must be greater than 0");
    } else if (key == "client_login_timeout") {
      pool.client_login_timeout = duration(value, path, env);
    } else if (key == "client_idle_timeout") {
      pool.client_idle_timeout = duration(value, path, env);
    } else if (key == "query_timeout") {
      pool.query_timeout = duration(value, path, env);
    } else if (key == "server_reset_query") {
      pool.server_reset_query = scalar(value, path, env);  // empty: no reset, as in PgBouncer
    } else if (key == "max_packet_size") {
      // Below 1 KiB ordinary queries would be refused; Postgres itself caps messages at 1 GiB.
      pool.max_packet_size = static_cast<std::uint32_t>(integer(value, path, env, 1024, 1LL << 30));
    } else if (key == "session_state") {
      std::string policy = scalar(value, path, env);
      if (policy != "pin" && policy != "error") fail(path, "must be pin or error, not \"" + policy + "\"");
      pool.pin_session_state = policy == "pin";
    } else if (key == "max_prepared_statements") {
      pool.max_prepared_statements = static_cast<std::uint32_t>(integer(value, path, env, 0, 100'000));
    } else if (key == "max_db_client_connections") {
      pool.max_db_client_connections = static_cast<int>(integer(value, path, env, 0, INT_MAX));
    } else if (key == "max_user_client_connections") {
      pool.max_user_client_connections = static_cast<int>(integer(value, path, env, 0, INT_MAX));
    } else if (key == "client_connection_rate_per_ip") {
      pool.client_connection_rate_per_ip = rate(value, path, env);
    } else if (key == "client_connection_burst_per_ip") {
      pool.client_connection_burst_per_ip = static_cast<int>(integer(value, path, env, 1, 1'000'000));
    } else {
      return false;
    }
    return true;
  });
}

DatabaseConfig read_database(const std::string& name, const YAML::Node& node, const std::string& db_path,
                             const EnvLookup& env) {
  DatabaseConfig db;
  db.name = name;
  db.dbname = name;
  for_each_entry(node, db_path,
                 [&](const std::string& key, const YAML::Node& value, const std::string& path) {
                   if (key == "host") {
                     db.host = non_empty(value, path, env);
                   } else if (key == "port") {
                     db.port = port(value, path, env);
                   } else if (key == "dbname") {
                     db.dbname = non_empty(value, path, env);
                   } else if (key == "user") {
                     db.user = non_empty(value, path, env);
                   } else if (key == "password") {
                     db.password = scalar(value, path, env);
                   } else if (key == "pool_size") {
                     db.pool_size = static_cast<int>(integer(value, path, env, 1, INT_MAX));
                   } else if (key == "pool_mode") {
                     db.pool_mode = pool_mode(value, path, env);
                   } else if (key == "max_db_client_connections") {
                     db.max_db_client_connections = static_cast<int>(integer(value, path, env, 0, INT_MAX));
                   } else if (key == "auth_user") {
                     db.auth_user = non_empty(value, path, env);
                   } else if (key == "sslmode") {
                     db.sslmode = ssl_mode(value, path, env);
                   } else if (key == "sslrootcert") {
                     db.sslrootcert = readable_file(value, path, env);
                   } else if (key == "sslcert") {
                     db.sslcert = readable_file(value, path, env);
                   } else if (key == "sslkey") {
                     db.sslkey = readable_file(value, path, env);
                   } else {
                     return false;
                   }
                   return true;
                 });
  if ((db.sslmode == SslMode::verify_ca || db.sslmode == SslMode::verify_full) && db.sslrootcert.empty())
    fail(db_path + ".sslrootcert", "is required with sslmode verify-ca or verify-full");
  if (db.sslcert.empty() != db.sslkey.empty())
    fail(db_path + (db.sslcert.empty() ? ".sslcert" : ".sslkey"), "sslcert and sslkey go together");
  return db;
}

void read_databases(const YAML::Node& node, const EnvLookup& env, Config& config) {
  // Database names are free-form (they are what clients send), so every key is accepted here.
  for_each_entry(node, "databases",
                 [&](const std::string& name, const YAML::Node& value, const std::string& path) {
                   if (name.empty()) fail("databases", "database names must not be empty");
                   config.databases.emplace(name, read_database(name, value, path, env));
                   return true;
                 });
}

// --- HTTP-SQL (POST /sql) ---
std::vector<std::string> string_list(const YAML::Node& node, const std::string& path, const EnvLookup& env) {
  std::vector<std::string> out;
  if (node.IsNull()) return out;
  if (!node.IsSequence()) fail(path, std::string("expected a list, got ") + kind_of(node));
  for (std::size_t i = 0; i < node.size(); ++i)
    out.push_back(non_empty(node[i], path + "[" + std::to_string(i) + "]", env));
  return out;
}

bool boolean(const YAML::Node& node, const std::string& path, const EnvLookup& env) {
  const std::string text = scalar(node, path, env);
  if (text == "true" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "no" || text == "off") return false;
  fail(path, "expected true or false, got \"" + text + "\"");
}

void read_http(const YAML::Node& node, const EnvLookup& env, Config& config) {
  HttpSqlConfig& http = config.http;
  for_each_entry(node, "http", [&](const std::string& key, const YAML::Node& value, const std::string& path) {
    if (key == "max_body_size") {
      http.max_body_size = static_cast<std::uint64_t>(integer(value, path, env, 1024, 1LL << 30));
    } else if (key == "max_response_size") {
      http.max_response_size = static_cast<std::uint64_t>(integer(value, path, env, 1024, 1LL << 30));
    } else if (key == "max_queries_per_batch") {
      http.max_queries_per_batch = static_cast<int>(integer(value, path, env, 1, INT_MAX));
    } else if (key == "max_params_per_query") {
      http.max_params_per_query = static_cast<int>(integer(value, path, env, 0, 65535));
    } else if (key == "max_header_size") {
      http.max_header_size = static_cast<std::uint32_t>(integer(value, path, env, 1024, 1 << 20));
    } else if (key == "statement_timeout") {
      http.statement_timeout = duration(value, path, env);
    } else if (key == "cors_allowed_origins") {
      http.cors_allowed_origins = string_list(value, path, env);
    } else if (key == "auth_cache_ttl") {  // deprecated: the top-level auth_cache_ttl
      config.auth_cache_ttl = duration(value, path, env);
    } else if (key == "auth_cache_size") {  // deprecated: the top-level auth_cache_size
      config.auth_cache_size = static_cast<int>(integer(value, path, env, 0, INT_MAX));
    } else if (key == "websocket_path") {
      http.websocket_path = scalar(value, path, env);
      if (!http.websocket_path.empty() && http.websocket_path[0] != '/')
        fail(path,
             "must start with '/' (or be empty to turn WebSocket off), got \"" + http.websocket_path + "\"");
    } else if (key == "allow_cleartext_password") {  // deprecated: allow_plaintext_password
      config.allow_plaintext_password = config.allow_plaintext_password || boolean(value, path, env);
    } else if (key == "tls") {
      http.tls = boolean(value, path, env);
    } else {
      return false;
    }
    return true;
  });
}
// A token names one user; the same token under two users would make the user depend on the order of a loop.
void check_http_tokens(const Config& config) {
  std::map<std::string, std::string> owner;
  for (std::size_t i = 0; i < config.users.size(); ++i) {
    for (std::size_t j = 0; j < config.users[i].http_tokens.size(); ++j) {
      auto [it, fresh] = owner.emplace(config.users[i].http_tokens[j], config.users[i].name);
      if (!fresh)
        fail("users[" + std::to_string(i) + "].http_tokens[" + std::to_string(j) + "]",
             "the same token is already given to user \"" + it->second + "\"");
    }
  }
}
// --- end HTTP-SQL ---

void read_users(const YAML::Node& node, const EnvLookup& env, Config& config) {
  if (node.IsNull()) return;  // "users:" with every entry commented out
  if (!node.IsSequence()) fail("users", std::string("expected a list, got ") + kind_of(node));
  for (std::size_t i = 0; i < node.size(); ++i) {
    const std::string user_path = "users[" + std::to_string(i) + "]";
    const YAML::Node item = node[i];
    if (!item.IsMap()) fail(user_path, std::string("expected a map, got ") + kind_of(item));
    UserConfig user;
    bool has_name = false;
    for_each_entry(
        item, user_path, [&](const std::string& key, const YAML::Node& value, const std::string& path) {
          if (key == "name") {
            user.name = non_empty(value, path, env);
            has_name = true;
          } else if (key == "password") {
            user.password = scalar(value, path, env);
          } else if (key == "http_tokens") {  // HTTP-SQL
            user.http_tokens = string_list(value, path, env);
          } else if (key == "max_user_client_connections") {
            user.max_user_client_connections = static_cast<int>(integer(value, path, env, 0, INT_MAX));
          } else {
            return false;
          }
          return true;
        });
    if (!has_name) fail(user_path + ".name", "is required");
    for (std::size_t j = 0; j < i; ++j) {
      if (config.users[j].name == user.name) {
        fail(user_path + ".name",
             "duplicate user \"" + user.name + "\" (also users[" + std::to_string(j) + "])");
      }
    }
    config.users.push_back(std::move(user));
  }
}

Config read_config(const YAML::Node& root, const EnvLookup& env) {
  Config config;
  bool has_auth_type = false;
  bool has_tls_mode = false;
  for_each_entry(root, "", [&](const std::string& key, const YAML::Node& value, const std::string& path) {
    if (key == "listen") {
      for_each_entry(value, path, [&](const std::string& k, const YAML::Node& v, const std::string& p) {
        if (k == "postgres")
          config.listen.postgres = endpoint(v, p, env);
        else if (k == "http")
          config.listen.http = endpoint(v, p, env);
        else if (k == "metrics")
          config.listen.metrics = endpoint(v, p, env);
        else
          return false;
        return true;
      });
    } else if (key == "tcp_defer_accept") {
      config.tcp_defer_accept = boolean(value, path, env);
    } else if (key == "workers") {
      config.workers = static_cast<int>(integer(value, path, env, 0, 1024));
    } else if (key == "shutdown_timeout") {
      config.shutdown_timeout = parse_duration(scalar(value, path, env), path);
    } else if (key == "log_level") {
      config.log_level = log_level(value, path, env);
    } else if (key == "log_format") {
      config.log_format = scalar(value, path, env);
      if (config.log_format != "text" && config.log_format != "json")
        fail(path, "invalid value \"" + config.log_format + "\" (expected text or json)");
    } else if (key == "auth_type") {
      config.auth_type = auth_type(value, path, env);
      has_auth_type = true;
    } else if (key == "auth_user") {
      config.auth_user = non_empty(value, path, env);
    } else if (key == "auth_query") {
      config.auth_query = non_empty(value, path, env);
      if (config.auth_query.find("$1") == std::string::npos)
        fail(
            path,
            "must take the user name as $1, e.g. \"SELECT usename, passwd FROM pg_shadow WHERE usename=$1\"");
    } else if (key == "pool") {
      read_pool(value, env, config.pool);
    } else if (key == "databases") {
      read_databases(value, env, config);
    } else if (key == "users") {
      read_users(value, env, config);
    } else if (key == "http") {  // HTTP-SQL
      read_http(value, env, config);
    } else if (key == "tls") {
      read_tls(value, env, config.tls, has_tls_mode);
    } else if (key == "allow_plaintext_password") {
      config.allow_plaintext_password = config.allow_plaintext_password || boolean(value, path, env);
    } else if (key == "auth_cache_ttl") {
      config.auth_cache_ttl = duration(value, path, env);
    } else if (key == "auth_cache_size") {
      config.auth_cache_size = static_cast<int>(integer(value, path, env, 0, INT_MAX));
    } else if (key == "metrics") {
      for_each_entry(value, path, [&](const std::string& k, const YAML::Node& v, const std::string& p) {
        if (k != "enabled") return false;
        config.metrics.enabled = boolean(v, p, env);
        return true;
      });
    } else if (key == "admin_users") {
      if (value.IsNull()) return true;
      if (!value.IsSequence())
        fail(path, std::string("expected a list of user names, got ") + kind_of(value));
      for (std::size_t i = 0; i < value.size(); ++i)
        config.admin_users.push_back(non_empty(value[i], path + "[" + std::to_string(i) + "]", env));
    } else {
      return false;
    }
    return true;
  });

  if (config.databases.empty()) fail("databases", "at least one database is required");
  check_tls(config, has_tls_mode);
  check_http_tokens(config);  // HTTP-SQL
  for (std::size_t i = 0; i < config.admin_users.size(); ++i) {
    if (!config.find_user(config.admin_users[i]))
      fail("admin_users[" + std::to_string(i) + "]",
           "\"" + config.admin_users[i] + "\" is not listed in users (admins log in like everyone else)");
  }
  // The auth_user logs in to Postgres with its own secret, so it must have one.
  auto check_auth_user = [&](const std::optional<std::string>& name, const std::string& path) {
    if (name && !config.find_user(*name))
      fail(path, "\"" + *name + "\" is not listed in users (pgmux logs in as it with its password there)");
  };
  check_auth_user(config.auth_user, "auth_user");
  for (const auto& [name, db] : config.databases)
    check_auth_user(db.auth_user, "databases." + name + ".auth_user");
  // An empty secret would let "plain" accept an empty password; only trust may go without one.
  if (config.auth_type != AuthType::trust) {
    for (std::size_t i = 0; i < config.users.size(); ++i) {
      if (config.users[i].password.empty()) {
        fail("users[" + std::to_string(i) + "].password",
             std::string("is required unless auth_type is trust") +
                 (has_auth_type ? "" : " (the default is scram-sha-256)"));
      }
    }
  }
  return config;
}

}  // namespace

const UserConfig* Config::find_user(const std::string& name) const {
  for (const UserConfig& user : users) {
    if (user.name == name) return &user;
  }
  return nullptr;
}

EnvLookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

Config parse_config(const std::string& yaml_text, const EnvLookup& env) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(std::string("config: ") + e.what());
  }
  if (!root.IsNull() && !root.IsMap())
    fail("config", std::string("expected a map at the top level, got ") + kind_of(root));
  try {
    return read_config(root, env);
  } catch (const YAML::Exception& e) {
    // Not expected once types are checked, but callers are promised ConfigError only.
    throw ConfigError(std::string("config: ") + e.what());
  }
}

Config load_config_file(const std::string& path, const EnvLookup& env) {
  auto cannot_read = [&] { return ConfigError("config: cannot read " + path + ": " + std::strerror(errno)); };
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw cannot_read();
  std::string text;
  char buffer[8192];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) text.append(buffer, n);
  if (std::ferror(file.get())) throw cannot_read();  // e.g. EISDIR: fopen succeeds on a directory
  return parse_config(text, env);
}

}  // namespace pgmux::config
