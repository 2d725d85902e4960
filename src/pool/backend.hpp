// One server connection to Postgres, and the login that opens it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "net/asio.hpp"
#include "net/readiness.hpp"
#include "net/tls_context.hpp"
#include "pgmux/auth/secrets.hpp"
#include "pgmux/config/config.hpp"
#include "pgmux/protocol/session_params.hpp"
#include "pool/prepared_statements.hpp"

namespace pgmux::pool {

using Clock = std::chrono::steady_clock;

// What pgmux presents to Postgres. Any one of the secrets is enough for the method it serves.
struct BackendCredentials {
  std::string user;
  std::optional<auth::UserSecret>
      secret;  // plain (any method), md5 hash (md5 only) or verifier (useless alone)
  std::optional<std::pair<auth::Key256, auth::Key256>>
      scram_keys;                              // ClientKey, ServerKey from a client login
  std::shared_ptr<const net::BackendTls> tls;  // sslmode other than disable: how to speak TLS to the server
};

struct Backend {
  explicit Backend(net::Socket s) : socket(std::move(s)), created(Clock::now()), last_used(created) {}
  ~Backend();
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;
  net::Socket socket;
  // The address family it was connected over, so that moving the socket to another worker needs no
  // getsockname. A TLS backend's socket is the plaintext end of a socketpair, for which any tag will do.
  asio::ip::tcp protocol = asio::ip::tcp::v4();
  // The readiness set of the worker it lives on, once a relay has read from it there: it stays in that set
  // between clients (see looks_healthy).
  net::ReadinessSet* watched_by = nullptr;
  net::ReadinessSet::Id watch_id = net::ReadinessSet::kNone;
  std::uint32_t pid = 0, secret_key = 0;  // for CancelRequest
  protocol::ParamSet params;              // its current session settings, as reported to pgmux
  BackendStatements statements;           // prepared statements it holds on clients' behalf
  Clock::time_point created, last_used;
  std::uint64_t generation = 0;  // the pool's generation when it connected: older ones go to an old server
};

// Parameters the server reported (ParameterStatus) during login, in order.
using ServerParameters = std::vector<std::pair<std::string, std::string>>;

struct BackendLogin {
  std::unique_ptr<Backend> backend;  // null on failure
  ServerParameters parameters;
  std::string sqlstate, message;  // on failure: what to tell the client
};

// Connects, authenticates as Postgres asks (SCRAM-SHA-256, md5 or cleartext) and reads up to ReadyForQuery.
asio::awaitable<BackendLogin> connect_backend(const config::DatabaseConfig& db,
                                              const BackendCredentials& creds, config::Duration timeout);

// Asks Postgres, on a connection of its own, to cancel what the backend (pid, key) is running; gives up after
// 5 s (a stopped server).
asio::awaitable<void> send_cancel_request(const config::DatabaseConfig& db, std::uint32_t pid,
                                          std::uint32_t key);

// Re-homes the backend's socket on `executor` (the leasing client's worker, the calling thread) if it lives
// on another one, so that its I/O completes on the client's thread instead of hopping threads on every
// operation. It leaves the readiness set of its old worker.
void move_to(Backend& backend, const asio::any_io_executor& executor);

// Out of its worker's readiness set, for a user that reads it through Asio (POST /sql): the set would report
// every reply a second time. A relay puts it back when it borrows it.
void unwatch(Backend& backend);

// Backend's socket still usable and silent? Idle backends must not have sent anything (a FATAL from a
// restarting server, or EOF) — if they did, they are closed instead of reused. A backend used within the last
// second and watched by the calling thread's readiness set, which saw nothing come since a relay last read
// it, is known silent without asking the socket.
bool looks_healthy(Backend& backend);

}  // namespace pgmux::pool
