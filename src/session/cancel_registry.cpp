// Maps the (pid, key) pgmux gave each client to the backend now serving it, for CancelRequest.
#include "session/cancel_registry.hpp"

#include "pgmux/auth/crypto.hpp"

namespace pgmux::session {

std::uint64_t CancelRegistry::add(CancelTarget* target) {
  for (;;) {
    std::uint64_t key;
    auth::random_bytes({reinterpret_cast<std::uint8_t*>(&key), sizeof key});
    key &= 0x7fffffffffffffffull;  // a positive pid, as clients print it
    if (key >> 32 == 0) continue;
    std::lock_guard lock(mutex_);
    if (targets_.emplace(key, target).second) return key;
  }
}

void CancelRegistry::remove(std::uint64_t client_key) {
  std::lock_guard lock(mutex_);
  targets_.erase(client_key);
}

CancelRegistry::Found CancelRegistry::find(std::uint32_t pid, std::uint32_t key) {
  std::lock_guard lock(mutex_);
  auto it = targets_.find(std::uint64_t{pid} << 32 | key);
  if (it == targets_.end()) return {};
  it->second->cancel_sent.store(true, std::memory_order_seq_cst);
  std::uint64_t backend = it->second->backend_key.load(std::memory_order_seq_cst);
  if (backend == 0) return {};
  if (!it->second->database) return {};
  return {*it->second->database, static_cast<std::uint32_t>(backend >> 32),
          static_cast<std::uint32_t>(backend)};
}

}  // namespace pgmux::session
