// One client connection, from the startup packet to the end: login, then transactions relayed to backends.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "net/asio.hpp"
#include "pool/pool.hpp"
#include "session/cancel_registry.hpp"
#include "session/proxy.hpp"
#include "session/relay.hpp"

namespace pgmux::session {

class ClientSession {
 public:
  ClientSession(Proxy& proxy, tcp::socket socket);
  ~ClientSession();

  // The whole life of the connection; returns when it is closed.
  asio::awaitable<void> run();

 private:
  // Startup packet, TLS/GSS refusal, cancel requests, authentication. True when the client may send queries.
  asio::awaitable<bool> login();
  asio::awaitable<bool> authenticate(const std::string& user);
  asio::awaitable<bool> send_welcome();
  asio::awaitable<void> forward_cancel(std::uint32_t pid, std::uint32_t key);

  asio::awaitable<void> serve();
  // After the client left: ends whatever it left open (Sync for unsynced messages, ROLLBACK) and, in session
  // mode, runs server_reset_query, so the next client finds a clean backend. False: close the backend
  // instead.
  asio::awaitable<bool> clean_up_backend(pool::Backend& backend);

  // Sends an ErrorResponse (FATAL ends the session after it).
  asio::awaitable<void> send_error(std::string_view severity, std::string_view sqlstate,
                                   std::string_view message);

  Proxy& proxy_;
  tcp::socket socket_;
  std::string user_;
  std::string application_name_;
  std::optional<std::pair<auth::Key256, auth::Key256>> scram_keys_;  // ClientKey, ServerKey from the login
  std::optional<std::string> learned_password_;                      // sent in clear (auth_type plain)
  const config::DatabaseConfig* database_ = nullptr;
  pool::Pool* pool_ = nullptr;
  bool session_mode_ = false;
  CancelTarget cancel_target_;
  std::uint64_t client_key_ = 0;  // our BackendKeyData, registered for cancels
  std::optional<Relay> relay_;     // from login to the end
  asio::steady_timer relay_done_;  // cancelled by the relay when the session ends
};

}  // namespace pgmux::session
