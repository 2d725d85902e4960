// PAUSE, RESUME and KILL: holding a database's new transactions, letting them go, dropping its connections.
#include "admin/console.hpp"
#include "log.hpp"
#include "pgmux/protocol/builders.hpp"
#include "pgmux/protocol/wire.hpp"
#include "session/relay.hpp"
#include "session/worker_visits.hpp"

namespace pgmux::admin {

using namespace protocol;

asio::awaitable<void> Console::pause(const std::vector<std::string>& args, std::string& out) {
  std::vector<std::string> databases;
  if (!args.empty()) {
    if (!known_database(args[0], out)) co_return;
    databases.push_back(args[0]);
  } else {
    std::shared_ptr<const config::Config> config = proxy_.config();
    for (const auto& [name, db] : config->databases) databases.push_back(name);
  }
  for (const std::string& name : databases) proxy_.hold_database(name);
  log::info("admin console: PAUSE ", args.empty() ? "(all databases)" : args[0]);

  // As PgBouncer: PAUSE answers once the transactions under way have finished, so that what follows (a
  // server restart, a failover) finds no backend busy. Bounded by shutdown_timeout, the same allowance a
  // drain gives them, so the console never hangs on a client that stays in its transaction.
  const auto deadline = pool::Clock::now() + proxy_.config()->shutdown_timeout;
  int busy = 0;
  for (const auto& [key, pool] : proxy_.pools()) {
    if (std::find(databases.begin(), databases.end(), key.first) == databases.end()) continue;
    if (co_await pool->wait_until_quiet(deadline)) continue;
    pool::PoolCounts c = pool->counts();
    busy += c.active + c.connecting;
  }
  if (busy > 0) {
    append_error(out, "ERROR", sqlstate::kQueryCanceled,
                 "PAUSE: " + std::to_string(busy) +
                     " server connection(s) still in use after shutdown_timeout; new transactions stay held "
                     "(RESUME lets them go)");
    co_return;
  }
  append_command_complete(out, "PAUSE");
}

asio::awaitable<void> Console::resume(const std::vector<std::string>& args, std::string& out) {
  if (!args.empty()) {
    if (!known_database(args[0], out)) co_return;
    if (!proxy_.release_database(args[0])) {
      append_error(out, "ERROR", sqlstate::kObjectNotInPrerequisiteState,
                   "database \"" + args[0] + "\" is not paused");
      co_return;
    }
  } else {
    std::set<std::string> held = proxy_.held_databases();
    if (held.empty()) {
      append_error(out, "ERROR", sqlstate::kObjectNotInPrerequisiteState, "no database is paused");
      co_return;
    }
    for (const std::string& name : held) proxy_.release_database(name);
  }
  log::info("admin console: RESUME ", args.empty() ? "(all databases)" : args[0]);
  append_command_complete(out, "RESUME");
}

asio::awaitable<void> Console::kill(const std::vector<std::string>& args, std::string& out) {
  const std::string& database = args[0];
  if (!known_database(database, out)) co_return;
  // Held first, so that no client takes a backend between the steps; new clients wait for RESUME.
  proxy_.hold_database(database);
  for (const auto& [key, pool] : proxy_.pools())
    if (key.first == database) pool->kill();
  auto end_clients_here = [&database] {
    int n = 0;
    session::Relay::for_each_on_this_thread([&](session::Relay& relay) {
      if (relay.pool().name() != database) return;
      relay.kill();
      ++n;
    });
    return n;
  };
  auto killed = co_await session::visit_workers(proxy_, end_clients_here);
  int clients = 0;
  for (int n : killed) clients += n;
  log::info("admin console: KILL ", database, ": ", clients, " client(s) disconnected");
  append_command_complete(out, "KILL");
}

}  // namespace pgmux::admin
