// The admin console: the special database "pgmux", answering SHOW commands as ordinary result sets.
#include "admin/console.hpp"

#include <cctype>
#include <map>

#include "net/message_io.hpp"
#include "pgmux/protocol/builders.hpp"
#include "pgmux/protocol/wire.hpp"

namespace pgmux::admin {

using namespace protocol;

namespace {

const char* mode_name(config::PoolMode mode) {
  return mode == config::PoolMode::session ? "session" : "transaction";
}

std::string millis(config::Duration d) {
  return std::to_string(d.count()) + "ms";
}

}  // namespace

std::string ConsoleCommand::upper(std::size_t i) const {
  std::string out = i < words.size() ? words[i] : std::string();
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

ConsoleCommand parse_console_command(std::string_view text) {
  ConsoleCommand command;
  std::size_t i = 0;
  while (i < text.size() && text[i] != ';') {
    if (std::isspace(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    std::string word;
    if (text[i] == '"') {  // a quoted name, as psql users write identifiers
      for (++i; i < text.size() && text[i] != '"'; ++i) word += text[i];
      ++i;
    } else {
      for (; i < text.size() && text[i] != ';' && !std::isspace(static_cast<unsigned char>(text[i])); ++i)
        word += text[i];
    }
    command.words.push_back(std::move(word));
  }
  return command;
}

const std::vector<Console::Command> Console::kCommands = {
    {"SHOW HELP", 0, 0, &Console::show_help},
    {"SHOW POOLS", 0, 0, &Console::show_pools},
    {"SHOW STATS", 0, 0, &Console::show_stats},
    {"SHOW CLIENTS", 0, 0, &Console::show_clients},
    {"SHOW SERVERS", 0, 0, &Console::show_servers},
    {"SHOW DATABASES", 0, 0, &Console::show_databases},
    {"SHOW CONFIG", 0, 0, &Console::show_config},
    {"SHOW VERSION", 0, 0, &Console::show_version},
    {"PAUSE", 0, 1, &Console::pause},
    {"RESUME", 0, 1, &Console::resume},
    {"KILL", 1, 1, &Console::kill},
    {"RELOAD", 0, 0, &Console::reload},
    {"SHUTDOWN", 0, 0, &Console::shutdown},
};

asio::awaitable<void> Console::run() {
  std::string body;
  for (;;) {
    char type;
    if (co_await net::read_message(socket_, type, body, 1 << 20)) co_return;
    std::string out;
    switch (type) {
      case 'X':
        co_return;
      case 'Q':
        out = co_await answer(std::string_view(
            body.data(), body.find('\0') == std::string::npos ? body.size() : body.find('\0')));
        append_ready_for_query(out, 'I');
        break;
      case 'S':
        append_ready_for_query(out, 'I');
        break;
      default:
        // Extended query: one error, then the client's Sync gets its ReadyForQuery.
        append_error(out, "ERROR", sqlstate::kFeatureNotSupported,
                     "the admin console speaks the simple query protocol only");
        break;
    }
    if (co_await net::write_all(socket_, out)) co_return;
  }
}

asio::awaitable<std::string> Console::answer(std::string_view text) {
  ConsoleCommand command = parse_console_command(text);
  std::string out;
  if (command.words.empty()) {
    MessageBuilder(out, 'I');  // EmptyQueryResponse
    co_return out;
  }
  std::string one = command.upper(0), two = one + " " + command.upper(1);
  if (one == "SHOW" && command.words.size() == 1) two = "SHOW HELP";
  for (const Command& c : kCommands) {
    const bool two_words = c.name.find(' ') != std::string_view::npos;
    if (c.name != (two_words ? two : one)) continue;
    std::vector<std::string> args(command.words.begin() + (two_words ? 2 : 1), command.words.end());
    if (one == "SHOW" && command.words.size() == 1) args.clear();
    if (args.size() < c.min_args || args.size() > c.max_args) {
      append_error(out, "ERROR", sqlstate::kSyntaxError,
                   std::string(c.name) + (c.max_args == 0   ? " takes no argument"
                                          : c.min_args == 1 ? " needs a database name"
                                                            : " takes at most a database name"));
      co_return out;
    }
    co_await (this->*c.run)(args, out);
    co_return out;
  }
  std::string shown = one == "SHOW" ? two : one;
  append_error(out, "ERROR", sqlstate::kSyntaxError,
               "invalid admin command \"" + shown + "\" (try SHOW HELP)");
  co_return out;
}

asio::awaitable<void> Console::show_help(const std::vector<std::string>&, std::string& out) {
  append_row_description(out, {"command"});
  for (const Command& c : kCommands)
    append_data_row(out, {std::string(c.name) + (c.max_args == 0 ? "" : c.min_args == 1 ? " db" : " [db]")});
  append_command_complete(out, "SHOW");
  co_return;
}

asio::awaitable<void> Console::show_version(const std::vector<std::string>&, std::string& out) {
  append_row_description(out, {"version"});
  append_data_row(out, {"pgmux " PGMUX_VERSION});
  append_command_complete(out, "SHOW");
  co_return;
}

bool Console::known_database(const std::string& name, std::string& out) const {
  if (proxy_.config()->databases.count(name)) return true;
  append_error(out, "ERROR", sqlstate::kUnknownDatabase, "no such database: \"" + name + "\"");
  return false;
}

asio::awaitable<void> Console::reload(const std::vector<std::string>&, std::string& out) {
  process_command("RELOAD", out);
  co_return;
}

asio::awaitable<void> Console::shutdown(const std::vector<std::string>&, std::string& out) {
  process_command("SHUTDOWN", out);
  co_return;
}

void Console::process_command(const std::string& command, std::string& out) {
  session::ProcessControl* control = proxy_.control();
  if (!control) {
    append_error(out, "ERROR", sqlstate::kFeatureNotSupported, command + " is not available here");
    return;
  }
  if (command == "SHUTDOWN") {
    // PgBouncer's SHUTDOWN stops at once; pgmux drains as for SIGTERM, so transactions in flight finish.
    control->shut_down();
    append_command_complete(out, "SHUTDOWN");
    return;
  }
  std::string refused = control->reload();
  if (refused.empty())
    append_command_complete(out, "RELOAD");
  else  // F0000 config_file_error; the old config stays in force
    append_error(out, "ERROR", "F0000", "the configuration was not reloaded: " + refused);
}

asio::awaitable<void> Console::show_pools(const std::vector<std::string>&, std::string& out) {
  // PgBouncer's column names; the counts pgmux does not keep yet are 0.
  append_row_description(out, {"database", "user", "cl_active", "cl_waiting", "sv_active", "sv_idle",
                               "sv_used", "sv_login", "maxwait", "maxwait_us", "pool_mode"});
  std::shared_ptr<const config::Config> config = proxy_.config();
  auto pools = proxy_.pools();
  for (const auto& [key, pool] : pools) {
    pool::PoolCounts c = pool->counts();
    append_data_row(
        out, {key.first, key.second, std::to_string(c.clients - c.waiting), std::to_string(c.waiting),
              std::to_string(c.active), std::to_string(c.idle), "0", std::to_string(c.connecting), "0", "0",
              mode_name(config->pool_mode_for(pool->database()))});
  }
  append_command_complete(out, "SHOW");
  co_return;
}

asio::awaitable<void> Console::show_stats(const std::vector<std::string>&, std::string& out) {
  // PgBouncer's names; times in microseconds. Transaction time is the time a backend was lent (transaction
  // mode).
  append_row_description(out, {"database", "total_xact_count", "total_query_count", "total_received",
                               "total_sent", "total_xact_time", "total_query_time", "total_wait_time",
                               "avg_xact_time", "avg_query_time", "avg_wait_time"});
  std::map<std::string, pool::TrafficTotals> by_database;
  for (const auto& [key, pool] : proxy_.pools()) {
    pool::TrafficTotals t = pool->traffic().totals();
    pool::TrafficTotals& sum = by_database[key.first];
    sum.transactions += t.transactions;
    sum.queries += t.queries;
    sum.bytes_received += t.bytes_received;
    sum.bytes_sent += t.bytes_sent;
    sum.transaction_us += t.transaction_us;
    sum.wait_us += t.wait_us;
    sum.query_us += t.query_us;
    for (std::size_t b = 0; b < t.answered.size(); ++b) sum.answered[b] += t.answered[b];
  }
  for (const auto& [database, t] : by_database) {
    std::uint64_t answered = 0;  // requests timed (ReadyForQuery messages), query_us's count
    for (std::uint64_t n : t.answered) answered += n;
    auto average = [](std::uint64_t total, std::uint64_t count) {
      return std::to_string(count ? total / count : 0);
    };
    append_data_row(out, {database, std::to_string(t.transactions), std::to_string(t.queries),
                          std::to_string(t.bytes_received), std::to_string(t.bytes_sent),
                          std::to_string(t.transaction_us), std::to_string(t.query_us),
                          std::to_string(t.wait_us), average(t.transaction_us, t.transactions),
                          average(t.query_us, answered), average(t.wait_us, t.transactions)});
  }
  append_command_complete(out, "SHOW");
  co_return;
}

asio::awaitable<void> Console::show_databases(const std::vector<std::string>&, std::string& out) {
  append_row_description(out, {"name", "host", "port", "database", "force_user", "pool_size", "pool_mode",
                               "current_connections"});
  std::shared_ptr<const config::Config> snapshot = proxy_.config();
  const config::Config& config = *snapshot;
  auto pools = proxy_.pools();
  for (const auto& [name, db] : config.databases) {
    int connections = 0;
    for (const auto& [key, pool] : pools) {
      if (key.first != name) continue;
      pool::PoolCounts c = pool->counts();
      connections += c.idle + c.active + c.connecting;
    }
    append_data_row(out, {name, db.host, std::to_string(db.port), db.dbname, db.user.value_or(""),
                          std::to_string(config.pool_size_for(db)), mode_name(config.pool_mode_for(db)),
                          std::to_string(connections)});
  }
  append_command_complete(out, "SHOW");
  co_return;
}

asio::awaitable<void> Console::show_config(const std::vector<std::string>&, std::string& out) {
  std::shared_ptr<const config::Config> snapshot = proxy_.config();
  const config::Config& c = *snapshot;
  append_row_description(out, {"key", "value"});
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"listen.postgres", c.listen.postgres.host + ":" + std::to_string(c.listen.postgres.port)},
      {"workers", std::to_string(c.workers)},
      {"tcp_defer_accept", c.tcp_defer_accept ? "true" : "false"},
      {"log_level", c.log_level},
      {"log_format", c.log_format},
      {"pool.mode", mode_name(c.pool.mode)},
      {"pool.default_pool_size", std::to_string(c.pool.default_pool_size)},
      {"pool.max_client_conn", std::to_string(c.pool.max_client_conn)},
      {"pool.query_wait_timeout", millis(c.pool.query_wait_timeout)},
      {"pool.server_idle_timeout", millis(c.pool.server_idle_timeout)},
      {"pool.server_lifetime", millis(c.pool.server_lifetime)},
      {"pool.server_connect_timeout", millis(c.pool.server_connect_timeout)},
      {"pool.client_login_timeout", millis(c.pool.client_login_timeout)},
      {"pool.client_idle_timeout", millis(c.pool.client_idle_timeout)},
      {"pool.query_timeout", millis(c.pool.query_timeout)},
      {"pool.server_reset_query", c.pool.server_reset_query},
      {"pool.max_packet_size", std::to_string(c.pool.max_packet_size)},
      {"pool.max_prepared_statements", std::to_string(c.pool.max_prepared_statements)},
      {"pool.session_state", c.pool.pin_session_state ? "pin" : "error"},
      {"pool.max_db_client_connections", std::to_string(c.pool.max_db_client_connections)},
      {"pool.max_user_client_connections", std::to_string(c.pool.max_user_client_connections)},
      {"pool.client_connection_rate_per_ip", std::to_string(c.pool.client_connection_rate_per_ip)},
      {"pool.client_connection_burst_per_ip", std::to_string(c.pool.client_connection_burst_per_ip)},
      {"auth_user", c.auth_user.value_or("")},
      {"auth_query", c.auth_query},
      {"listen.http",
       c.listen.http ? c.listen.http->host + ":" + std::to_string(c.listen.http->port) : std::string()},
      {"listen.metrics", c.listen.metrics
                             ? c.listen.metrics->host + ":" + std::to_string(c.listen.metrics->port)
                             : std::string()},
      {"shutdown_timeout", millis(c.shutdown_timeout)},
      {"http.max_body_size", std::to_string(c.http.max_body_size)},
      {"http.max_response_size", std::to_string(c.http.max_response_size)},
      {"http.max_queries_per_batch", std::to_string(c.http.max_queries_per_batch)},
      {"http.max_params_per_query", std::to_string(c.http.max_params_per_query)},
      {"http.max_header_size", std::to_string(c.http.max_header_size)},
      {"http.statement_timeout", millis(c.http.statement_timeout)},
      {"http.websocket_path", c.http.websocket_path},
      {"http.tls", c.http.tls ? "true" : "false"},
      {"allow_plaintext_password", c.allow_plaintext_password ? "true" : "false"},
      {"auth_cache_ttl", millis(c.auth_cache_ttl)},
      {"auth_cache_size", std::to_string(c.auth_cache_size)},
      {"tls.cert_file", c.tls.cert_file},
      {"tls.key_file", c.tls.key_file},
      {"tls.ca_file", c.tls.ca_file},
      {"tls.mode", c.tls.mode == config::TlsMode::require ? "require"
                   : c.tls.mode == config::TlsMode::allow ? "allow"
                                                          : "disable"},
      {"tls.client_cert", c.tls.client_cert == config::ClientCertMode::verify_full ? "verify-full"
                          : c.tls.client_cert == config::ClientCertMode::verify_ca ? "verify-ca"
                                                                                   : "none"},
      {"metrics.enabled", c.metrics.enabled ? "true" : "false"},
  };
  for (const auto& [key, value] : rows) append_data_row(out, {key, value});
  append_command_complete(out, "SHOW");
  co_return;
}

}  // namespace pgmux::admin
