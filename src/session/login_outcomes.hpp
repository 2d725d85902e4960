// How client logins ended, counted by transport and result for the metrics.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pgmux::session {

// A closed list, so the metric's series are known in advance: a refused login never adds a label value taken
// from what the client sent (user or database names), whatever it tries.
enum class LoginResult : std::uint8_t {
  ok,
  wrong_password,  // also an unknown user: the client is not told which
  unknown_database,
  too_many_clients,    // max_client_conn
  login_timeout,       // client_login_timeout
  protocol_error,      // a malformed startup packet or authentication message, no user name
  refused_cleartext,   // a password sent before it was asked for, where that is not allowed
  not_supported,       // replication connections
  admin_refused,       // the admin database, by a user not in admin_users
  server_unavailable,  // the pool's first login to the server failed
  tls_refused,  // without TLS where tls.mode is require, a failed handshake, or a client certificate refused
  client_disconnected,  // the client left after its startup packet, before logging in
};
inline constexpr std::size_t kLoginResults = static_cast<std::size_t>(LoginResult::client_disconnected) + 1;

inline constexpr std::array<std::string_view, kLoginResults> kLoginResultNames = {
    "ok",
    "wrong_password",
    "unknown_database",
    "too_many_clients",
    "login_timeout",
    "protocol_error",
    "refused_cleartext",
    "not_supported",
    "admin_refused",
    "server_unavailable",
    "tls_refused",
    "client_disconnected",
};

// Logins are once per connection, not per message, so one relaxed atomic increment each is cheap enough.
class LoginOutcomes {
 public:
  enum Transport : std::uint8_t { postgres, websocket, transports };
  static constexpr std::array<std::string_view, transports> kTransportNames = {"postgres", "websocket"};

  void add(Transport transport, LoginResult result) {
    counts_[transport][static_cast<std::size_t>(result)].fetch_add(1, std::memory_order_relaxed);
  }
  std::uint64_t get(Transport transport, LoginResult result) const {
    return counts_[transport][static_cast<std::size_t>(result)].load(std::memory_order_relaxed);
  }

 private:
  std::array<std::array<std::atomic<std::uint64_t>, kLoginResults>, transports> counts_{};
};

}  // namespace pgmux::session
