// What SHOW CLIENTS and SHOW SERVERS print about one connection, copied on the thread that owns it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "pool/backend.hpp"

namespace pgmux::session {

struct ServerSnapshot {
  const void* id = nullptr;    // PgBouncer's ptr column: tells connections apart, links clients to servers
  const void* link = nullptr;  // the client it serves, if any
  std::string database, user;  // the pool's
  std::string addr, local_addr;
  std::uint16_t port = 0, local_port = 0;
  std::uint32_t pid = 0;  // the Postgres backend's process id
  bool active = false;    // lent to a client (else idle in the pool)
  pool::Clock::time_point connected_at, last_used;
  std::string application_name;  // as the server last reported it
};

struct ClientSnapshot {
  const void* id = nullptr;
  std::string user, database;
  std::string addr, local_addr;
  std::uint16_t port = 0, local_port = 0;
  bool websocket = false;
  bool waiting = false;  // queued for a backend
  pool::Clock::time_point connected_at, last_request, waiting_since;
  std::string application_name;
  std::optional<ServerSnapshot> server;  // the backend it holds
};

// "host:port" (or "[v6]:port") split for the addr and port columns; the whole text as addr if it has no port.
void split_address(const std::string& text, std::string& addr, std::uint16_t& port);
// The address and port of a socket's own end and of its peer; left empty when the socket has none (a
// socketpair).
void fill_endpoints(const net::Socket& socket, std::string& addr, std::uint16_t& port,
                    std::string& local_addr, std::uint16_t& local_port);

}  // namespace pgmux::session
