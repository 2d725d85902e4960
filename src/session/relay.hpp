// Moves bytes both ways between a client and the backend serving it, until the transaction (or session) ends.
#pragma once

#include <cstdint>
#include <optional>

#include "net/asio.hpp"
#include "net/buffer_pool.hpp"
#include "pgmux/protocol/message_scanner.hpp"
#include "pgmux/protocol/relay_state.hpp"
#include "pool/backend.hpp"

namespace pgmux::session {

// The hot path. Written as two small callback-driven pumps rather than coroutines: a coroutine frame per
// transaction would be a heap allocation per transaction (Asio recycles only small frames), while these
// handlers are small and come from Asio's per-thread recycling allocator. Each pump reads what the socket has
// without blocking, forwards whole runs of messages with one write, and waits only when there is nothing.
class Relay {
 public:
  enum class End { released, client_gone, backend_gone, client_protocol_violation };

  Relay(tcp::socket& client, std::uint32_t max_client_message);
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // Starts relaying between the client and `backend`. When both pumps have stopped, `done` is cancelled,
  // waking whoever waits on it. Check finished() before waiting: it may end before start() returns.
  // `release_at_idle` (transaction mode): end with End::released as soon as the backend may serve another.
  void start(pool::Backend& backend, asio::steady_timer& done, bool release_at_idle);
  bool finished() const { return ended_ && pending_ == 0; }
  End end() const { return end_; }
  // The transaction state, for deciding what a backend is worth after a client leaves.
  const protocol::RelayState& state() const { return state_; }
  // After the end: the backend can take new requests, because no request is running, nothing the client sent
  // was cut mid-message, and every reply byte read was forwarded. Only the transaction may still be open.
  bool backend_reusable() const {
    return backend_stream_intact_ && state_.tracker.outstanding() == 0 && !state_.client_writing &&
           !state_.client_partial;
  }

 private:
  void pump_client();
  void pump_backend();
  // Forwards the first `n` buffered client bytes; false if it had to go asynchronous.
  bool forward_to_backend(std::size_t n);
  bool forward_to_client(std::size_t n);
  void after_backend_forward();
  bool backend_at_rest() const;
  void finish(End end);
  template <class Handler>
  auto on_client_thread(Handler&& handler);
  void maybe_done();
  // Lets other sessions on this thread run after this many reads in a row (a long COPY must not starve them).
  static constexpr int kReadsPerTurn = 16;

  tcp::socket& client_;
  pool::Backend* backend_ = nullptr;
  asio::steady_timer* done_ = nullptr;
  bool release_at_idle_ = true;

  protocol::RelayState state_;
  protocol::MessageScanner client_scanner_;
  protocol::MessageScanner backend_scanner_;
  std::optional<net::IoBuffer> client_in_;  // borrowed while relaying
  std::optional<net::IoBuffer> backend_in_;
  bool backend_saw_ready_ = false;  // a ReadyForQuery went by in the bytes now being forwarded
  bool client_stop_ = false;        // the client sent Terminate: stop after forwarding what came before

  bool backend_stream_intact_ = false;
  int pending_ = 0;  // asynchronous operations in flight; their handlers must run before we are done
  bool ended_ = false;
  End end_ = End::released;
};

}  // namespace pgmux::session
