// Maps the (pid, key) pgmux gave each client to the backend now serving it, for CancelRequest.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "pgmux/config/config.hpp"

namespace pgmux::session {

// What a cancel needs to reach the backend serving a client. Written by the client's own thread at each
// lease, read by whichever thread receives the CancelRequest: one atomic word, so leasing takes no lock.
struct CancelTarget {
  const config::DatabaseConfig* database = nullptr;  // in the session's config snapshot: constant for it
  std::atomic<std::uint64_t> backend_key{0};         // pid << 32 | secret; 0 = no backend right now
  // Set by a CancelRequest before it reads backend_key. Postgres delivers a cancel asynchronously, so one
  // sent as the client's transaction ends can reach its backend after another client got it: a backend
  // released with this set must be closed, not reused.
  std::atomic<bool> cancel_sent{false};

  void set(std::uint32_t pid, std::uint32_t secret) {
    backend_key.store(std::uint64_t{pid} << 32 | secret, std::memory_order_seq_cst);
  }
  // Forgets the backend. True if a cancel may be on its way to it (then it must not serve anyone else).
  // Sequentially consistent with find(): either find() sees the backend gone, or this sees its flag.
  bool clear() {
    backend_key.store(0, std::memory_order_seq_cst);
    return cancel_sent.exchange(false, std::memory_order_seq_cst);
  }
};

class CancelRegistry {
 public:
  // Draws an unguessable (pid, key) pair not in use and registers `target` under it.
  std::uint64_t add(CancelTarget* target);
  void remove(std::uint64_t client_key);

  struct Found {
    // A copy: the client's session (and the config snapshot it holds) may end while the cancel is sent.
    std::optional<config::DatabaseConfig> database;
    std::uint32_t pid = 0, secret = 0;
  };
  // The backend to cancel for the client's (pid, key); database null when unknown or idle.
  Found find(std::uint32_t pid, std::uint32_t key);

 private:
  std::mutex mutex_;
  std::unordered_map<std::uint64_t, CancelTarget*> targets_;
};

}  // namespace pgmux::session
