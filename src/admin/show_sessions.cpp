// SHOW CLIENTS and SHOW SERVERS: every logged-in client and every server connection, in PgBouncer's columns.
#include <chrono>
#include <cstdio>
#include <ctime>

#include "admin/console.hpp"
#include "pgmux/protocol/builders.hpp"
#include "session/relay.hpp"
#include "session/worker_visits.hpp"

namespace pgmux::admin {

using namespace protocol;
using session::ClientSnapshot;
using session::ServerSnapshot;

namespace {

// PgBouncer's columns for both commands, in its order.
const std::vector<std::string> kColumns = {
    "type",         "user",       "database",     "state",        "addr", "port",
    "local_addr",   "local_port", "connect_time", "request_time", "wait", "wait_us",
    "close_needed", "ptr",        "link",         "remote_pid",   "tls",  "application_name"};

// A steady-clock moment as the wall-clock time it was, the way PgBouncer prints it.
std::string wall_time(pool::Clock::time_point at) {
  auto wall = std::chrono::system_clock::now() -
              std::chrono::duration_cast<std::chrono::system_clock::duration>(pool::Clock::now() - at);
  std::time_t seconds = std::chrono::system_clock::to_time_t(wall);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &utc);
  return text;
}

std::string pointer(const void* p) {
  if (!p) return "";
  char text[24];
  std::snprintf(text, sizeof text, "%p", p);
  return text;
}

void append_server(std::string& out, const ServerSnapshot& s) {
  append_data_row(
      out, {"S", s.user, s.database, s.active ? "active" : "idle", s.addr, std::to_string(s.port),
            s.local_addr, std::to_string(s.local_port), wall_time(s.connected_at), wall_time(s.last_used),
            "0", "0", "0", pointer(s.id), pointer(s.link), std::to_string(s.pid), "", s.application_name});
}

// Every relay's snapshot, gathered from the worker threads where the relays live.
asio::awaitable<std::vector<ClientSnapshot>> all_clients(session::Proxy& proxy) {
  auto snapshot_here = [] {
    std::vector<ClientSnapshot> here;
    session::Relay::for_each_on_this_thread([&](session::Relay& relay) { here.push_back(relay.snapshot()); });
    return here;
  };
  auto per_worker = co_await session::visit_workers(proxy, snapshot_here);
  std::vector<ClientSnapshot> all;
  for (auto& list : per_worker)
    for (auto& client : list) all.push_back(std::move(client));
  co_return all;
}

}  // namespace

asio::awaitable<void> Console::show_clients(const std::vector<std::string>&, std::string& out) {
  std::vector<ClientSnapshot> clients = co_await all_clients(proxy_);
  append_row_description(out, kColumns);
  const auto now = pool::Clock::now();
  for (const ClientSnapshot& c : clients) {
    auto waited = c.waiting ? std::chrono::duration_cast<std::chrono::microseconds>(now - c.waiting_since)
                            : std::chrono::microseconds(0);
    append_data_row(
        out,
        {"C", c.user, c.database, c.waiting ? "waiting" : "active", c.addr, std::to_string(c.port),
         c.local_addr, std::to_string(c.local_port), wall_time(c.connected_at), wall_time(c.last_request),
         std::to_string(waited.count() / 1'000'000), std::to_string(waited.count() % 1'000'000), "0",
         pointer(c.id), c.server ? pointer(c.server->id) : "", "0", "", c.application_name});
  }
  append_command_complete(out, "SHOW");
}

asio::awaitable<void> Console::show_servers(const std::vector<std::string>&, std::string& out) {
  // Lent backends are known to the relays holding them, idle ones to their pools. (Those still logging in
  // have no connection object yet: SHOW POOLS counts them as sv_login.)
  std::vector<ClientSnapshot> clients = co_await all_clients(proxy_);
  append_row_description(out, kColumns);
  for (const ClientSnapshot& c : clients)
    if (c.server) append_server(out, *c.server);
  for (const auto& [key, pool] : proxy_.pools()) {
    pool->for_each_idle([&](const pool::Backend& backend) {
      ServerSnapshot s;
      s.id = &backend;
      s.database = key.first;
      s.user = key.second;
      s.pid = backend.pid;
      s.connected_at = backend.created;
      s.last_used = backend.last_used;
      s.application_name = backend.params.get(TrackedParam::application_name);
      // An idle backend has no operation in flight: reading its addresses from this thread is safe.
      session::fill_endpoints(backend.socket, s.addr, s.port, s.local_addr, s.local_port);
      append_server(out, s);
    });
  }
  append_command_complete(out, "SHOW");
}

}  // namespace pgmux::admin
