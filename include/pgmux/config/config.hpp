// The whole configuration as one immutable value, loaded from YAML.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace pgmux::config {

using Duration = std::chrono::milliseconds;

enum class PoolMode { transaction, session };
enum class AuthType { scram_sha_256, md5, plain, trust };
// tls.mode (PgBouncer: client_tls_sslmode): whether clients may, or must, log in over TLS.
enum class TlsMode { disable, allow, require };
// tls.client_cert: none, or a certificate the client must present, checked against tls.ca_file (verify-ca)
// and whose CN must also equal the user name (verify-full), as Postgres's clientcert=verify-ca/verify-full.
enum class ClientCertMode { none, verify_ca, verify_full };
// databases.*.sslmode, as libpq names and means it.
enum class SslMode { disable, prefer, require, verify_ca, verify_full };

struct Endpoint {
  std::string host;  // IPv4 literal, IPv6 literal without brackets, or a host name
  std::uint16_t port = 0;
};

struct ListenConfig {
  Endpoint postgres{"127.0.0.1", 6432};  // listen.postgres: "host:port" or "[v6]:port"
  std::optional<Endpoint> http;          // listen.http: /metrics, /healthz, /readyz; off when absent
  std::optional<Endpoint> metrics;       // listen.metrics: /metrics, /healthz, /readyz only; off when absent
};

struct PoolConfig {
  PoolMode mode = PoolMode::transaction;  // pool.mode (PgBouncer: pool_mode)
  int default_pool_size = 20;             // backend connections per (database, user)
  int max_client_conn = 10000;
  Duration query_wait_timeout{120'000};   // 0 = wait forever
  Duration server_idle_timeout{600'000};  // 0 = never
  Duration server_lifetime{3'600'000};    // 0 = never
  Duration server_connect_timeout{15'000};
  Duration client_login_timeout{60'000};           // 0 = never
  Duration client_idle_timeout{0};                 // 0 = never
  std::string server_reset_query = "DISCARD ALL";  // session mode, before a backend is reused
  std::uint32_t max_packet_size = 64u << 20;       // larger client messages are a protocol violation
  // Transaction mode: named prepared statements kept per backend (least recently used closed first); 0 turns
  // pgmux's tracking off, as in PgBouncer.
  std::uint32_t max_prepared_statements = 200;
  // pool.session_state, transaction mode: a client whose SQL creates state only its backend can hold (LISTEN,
  // temp tables, session advisory locks, SET of other settings...) is pinned to that backend ("pin") or the
  // statement is refused ("error").
  bool pin_session_state = true;
  // A request a backend has not finished answering this long after the client's last bytes: the backend is
  // closed and the client gets an error (PgBouncer: query_timeout). 0 = never.
  Duration query_timeout{0};
  // Clients logged in at once to one database / as one user, whatever their pool (PgBouncer 1.24's names);
  // the next one gets FATAL 53300 after it authenticates. 0 = no limit. databases.<name> and users[] may
  // override them.
  int max_db_client_connections = 0;
  int max_user_client_connections = 0;
  // New connections per second from one client IP address (a token bucket holding up to
  // client_connection_burst_per_ip); beyond it the login is refused with 53300. 0 = no limit.
  double client_connection_rate_per_ip = 0;
  int client_connection_burst_per_ip = 20;
};

struct DatabaseConfig {
  std::string name;  // the key: what clients put in `database`
  std::string host = "127.0.0.1";
  std::uint16_t port = 5432;
  std::string dbname;                   // defaults to name
  std::optional<std::string> user;      // forced backend user
  std::optional<std::string> password;  // forced backend user's password (plain, md5 hash or SCRAM verifier)
  std::optional<int> pool_size;         // overrides pool.default_pool_size
  std::optional<PoolMode> pool_mode;    // overrides pool.mode
  std::optional<int> max_db_client_connections;  // overrides pool.max_db_client_connections
  std::optional<std::string> auth_user;          // overrides the top-level auth_user for this database
  // TLS to the server, as libpq's sslmode/sslrootcert/sslcert/sslkey. Default disable (libpq's is prefer):
  // a server on a private network answers at once, without an SSLRequest first.
  SslMode sslmode = SslMode::disable;
  std::string sslrootcert;  // verify-ca, verify-full: the CA certificates the server's chain must end at
  std::string sslcert;      // a client certificate to present (with sslkey), optional
  std::string sslkey;
};

// --- TLS to clients: the tls: section ---
struct TlsConfig {
  std::string
      cert_file;         // tls.cert_file: PEM, the server certificate (and chain); with key_file turns TLS on
  std::string key_file;  // tls.key_file: PEM private key
  std::string ca_file;   // tls.ca_file: CAs that client certificates must chain to (tls.client_cert)
  TlsMode mode = TlsMode::disable;  // tls.mode: allow when a certificate is set and no mode is given
  ClientCertMode client_cert = ClientCertMode::none;
  bool enabled() const { return !cert_file.empty(); }
};

struct UserConfig {
  std::string name;
  std::string password;                            // plain text, "md5<hex>" or "SCRAM-SHA-256$..."
  std::optional<int> max_user_client_connections;  // overrides pool.max_user_client_connections

  // --- HTTP-SQL (POST /sql) ---
  std::vector<std::string>
      http_tokens;  // users[].http_tokens: "Authorization: Bearer TOKEN" logs in as this user
};

// --- HTTP-SQL (POST /sql): the http: section ---
struct HttpSqlConfig {
  std::uint64_t max_body_size = 10u << 20;        // http.max_body_size: larger requests get 413
  std::uint64_t max_response_size = 10u << 20;    // http.max_response_size: larger results fail with 54000
  int max_queries_per_batch = 1000;               // http.max_queries_per_batch
  int max_params_per_query = 65535;               // http.max_params_per_query (Bind's own limit)
  std::uint32_t max_header_size = 16u << 10;      // http.max_header_size: larger request headers get 431
  Duration statement_timeout{0};                  // http.statement_timeout: 0 = the server's own setting
  std::vector<std::string> cors_allowed_origins;  // http.cors_allowed_origins: exact origins, or "*"
  // --- Postgres over WebSocket (the driver's Pool/Client mode) ---
  std::string websocket_path = "/v2";  // http.websocket_path: GET here upgrades; "" turns WebSocket off
  // http.tls: HTTPS and wss:// on listen.http with tls.cert_file/key_file (plain HTTP stays off then).
  bool tls = false;
};

// --- Observability: the metrics: section ---
struct MetricsConfig {
  // metrics.enabled: false stops the per-message counting (bytes, queries, transactions, their durations);
  // /metrics then shows only gauges, logins and process figures. For measuring what counting costs.
  bool enabled = true;
};

struct Config {
  ListenConfig listen;
  PoolConfig pool;
  std::map<std::string, DatabaseConfig> databases;
  std::vector<UserConfig> users;
  std::vector<std::string> admin_users;  // may use the admin console (database "pgmux"); must be in users
  AuthType auth_type = AuthType::scram_sha_256;
  // auth_user: users not listed in `users` are looked up in Postgres with auth_query, run as this (listed)
  // user on a small pool of its own per database, as PgBouncer does. Off when absent.
  std::optional<std::string> auth_user;
  std::string auth_query = "SELECT usename, passwd FROM pg_shadow WHERE usename=$1";
  int workers = 0;                    // 0 = one per core
  bool tcp_defer_accept = true;       // TCP_DEFER_ACCEPT on the listeners (net::set_defer_accept)
  Duration shutdown_timeout{30'000};  // SIGTERM: how long transactions in flight may take to finish
  std::string log_level = "info";     // debug | info | warning | error
  std::string log_format = "text";    // text | json (one object per line: ts, level, msg)
  HttpSqlConfig http;                 // --- HTTP-SQL (POST /sql) ---
  MetricsConfig metrics;              // --- observability ---
  TlsConfig tls;                      // --- TLS to clients ---
  // allow_plaintext_password: accept a password sent in clear text (before it was asked for, as Neon's
  // driver's pipelineConnect "password" does) over a connection that is neither TLS nor from loopback.
  // http.allow_cleartext_password is its deprecated alias.
  bool allow_plaintext_password = false;
  // Cleartext password checks that succeeded are trusted this long (wire logins and POST /sql alike), at
  // most auth_cache_size users at once (0 = no cache). http.auth_cache_ttl/_size are their older names.
  Duration auth_cache_ttl{60'000};
  int auth_cache_size = 10'000;

  int pool_size_for(const DatabaseConfig& db) const { return db.pool_size.value_or(pool.default_pool_size); }
  PoolMode pool_mode_for(const DatabaseConfig& db) const { return db.pool_mode.value_or(pool.mode); }
  const UserConfig* find_user(const std::string& name) const;
  // The auth_user that looks up unlisted users of `db`, if any.
  const std::optional<std::string>& auth_user_for(const DatabaseConfig& db) const {
    return db.auth_user ? db.auth_user : auth_user;
  }
  // 0 = no limit.
  int max_db_clients(const DatabaseConfig& db) const {
    return db.max_db_client_connections.value_or(pool.max_db_client_connections);
  }
  int max_user_clients(const std::string& user) const {
    const UserConfig* found = find_user(user);
    return found && found->max_user_client_connections ? *found->max_user_client_connections
                                                       : pool.max_user_client_connections;
  }
};

// Thrown at load with a message that starts with the key's path, e.g. "pool.query_wait_timeout: ...".
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Reads ${VAR} from the environment; tests pass their own.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup process_environment();

Config parse_config(const std::string& yaml_text, const EnvLookup& env = process_environment());
Config load_config_file(const std::string& path, const EnvLookup& env = process_environment());

// "250ms", "30s", "5m", "1h", or a bare integer meaning seconds (as PgBouncer). Throws ConfigError(path:
// ...).
Duration parse_duration(const std::string& text, const std::string& path);

}  // namespace pgmux::config
