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

std::string normalize_command(std::string_view text) {
  std::string out;
  bool space = false;
  for (char c : text) {
    if (c == ';') break;
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

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
        out = answer(std::string_view(body.data(),
                                      body.find('\0') == std::string::npos ? body.size() : body.find('\0')));
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

std::string Console::answer(std::string_view command_text) {
  std::string command = normalize_command(command_text);
  std::string out;
  if (command == "SHOW POOLS") {
    show_pools(out);
  } else if (command == "SHOW STATS") {
    show_stats(out);
  } else if (command == "SHOW DATABASES") {
    show_databases(out);
  } else if (command == "SHOW CONFIG") {
    show_config(out);
  } else if (command == "SHOW VERSION") {
    append_row_description(out, {"version"});
    append_data_row(out, {"pgmux " PGMUX_VERSION});
    append_command_complete(out, "SHOW");
  } else if (command == "SHOW HELP" || command == "SHOW") {
    append_row_description(out, {"command"});
    for (const char* c : {"SHOW POOLS", "SHOW STATS", "SHOW DATABASES", "SHOW CONFIG", "SHOW VERSION",
                          "SHOW HELP", "RELOAD", "SHUTDOWN"})
      append_data_row(out, {c});
    append_command_complete(out, "SHOW");
  } else if (command == "RELOAD" || command == "SHUTDOWN") {
    process_command(command, out);
  } else if (command.empty()) {
    MessageBuilder(out, 'I');  // EmptyQueryResponse
  } else {
    append_error(out, "ERROR", "42601", "invalid admin command \"" + command + "\" (try SHOW HELP)");
  }
  return out;
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

void Console::show_pools(std::string& out) {
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
}

void Console::show_stats(std::string& out) {
  // PgBouncer's names; times in microseconds. Transaction time is the time a backend was lent (transaction
  // mode).
  append_row_description(out,
                         {"database", "total_xact_count", "total_query_count", "total_received", "total_sent",
                          "total_xact_time", "total_wait_time", "avg_xact_time", "avg_wait_time"});
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
  }
  for (const auto& [database, t] : by_database) {
    auto average = [](std::uint64_t total, std::uint64_t count) {
      return std::to_string(count ? total / count : 0);
    };
    append_data_row(out, {database, std::to_string(t.transactions), std::to_string(t.queries),
                          std::to_string(t.bytes_received), std::to_string(t.bytes_sent),
                          std::to_string(t.transaction_us), std::to_string(t.wait_us),
                          average(t.transaction_us, t.transactions), average(t.wait_us, t.transactions)});
  }
  append_command_complete(out, "SHOW");
}

void Console::show_databases(std::string& out) {
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
}

void Console::show_config(std::string& out) {
  std::shared_ptr<const config::Config> snapshot = proxy_.config();
  const config::Config& c = *snapshot;
  append_row_description(out, {"key", "value"});
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"listen.postgres", c.listen.postgres.host + ":" + std::to_string(c.listen.postgres.port)},
      {"workers", std::to_string(c.workers)},
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
      {"listen.http",
       c.listen.http ? c.listen.http->host + ":" + std::to_string(c.listen.http->port) : std::string()},
      {"shutdown_timeout", millis(c.shutdown_timeout)},
      {"http.max_body_size", std::to_string(c.http.max_body_size)},
      {"http.max_response_size", std::to_string(c.http.max_response_size)},
      {"http.max_queries_per_batch", std::to_string(c.http.max_queries_per_batch)},
      {"http.max_params_per_query", std::to_string(c.http.max_params_per_query)},
      {"http.statement_timeout", millis(c.http.statement_timeout)},
      {"http.auth_cache_ttl", millis(c.http.auth_cache_ttl)},
      {"http.auth_cache_size", std::to_string(c.http.auth_cache_size)},
      {"http.websocket_path", c.http.websocket_path},
      {"http.allow_cleartext_password", c.http.allow_cleartext_password ? "true" : "false"},
  };
  for (const auto& [key, value] : rows) append_data_row(out, {key, value});
  append_command_complete(out, "SHOW");
}

}  // namespace pgmux::admin
