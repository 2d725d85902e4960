// client_connection_rate_per_ip: a token bucket per client address, in a table of bounded size.
#include "session/connection_rate.hpp"

#include <algorithm>

namespace pgmux::session {

namespace {

double refilled(double tokens, ConnectionRateLimiter::Clock::time_point since,
                ConnectionRateLimiter::Clock::time_point now, double per_second, int burst) {
  const double elapsed = std::chrono::duration<double>(now - since).count();
  return std::min<double>(burst, tokens + std::max(0.0, elapsed) * per_second);
}

}  // namespace

bool ConnectionRateLimiter::admit(const std::string& address, double per_second, int burst,
                                  Clock::time_point now) {
  if (per_second <= 0) return true;
  std::lock_guard lock(mutex_);
  auto it = buckets_.find(address);
  if (it == buckets_.end()) {
    if (buckets_.size() >= kMaxAddresses) make_room(per_second, burst, now);
    it = buckets_.emplace(address, Bucket{static_cast<double>(burst), now}).first;
  }
  Bucket& bucket = it->second;
  bucket.tokens = refilled(bucket.tokens, bucket.updated, now, per_second, burst);
  bucket.updated = now;
  if (bucket.tokens < 1) return false;
  bucket.tokens -= 1;
  return true;
}

void ConnectionRateLimiter::make_room(double per_second, int burst, Clock::time_point now) {
  // A full bucket says nothing a missing one would not: those go first. If most addresses are still being
  // limited (a flood from more addresses than the table holds), a quarter of the table is forgotten, which
  // only ever lets those addresses in sooner: memory stays bounded, and the sweep runs once per many new
  // addresses rather than for each.
  std::erase_if(buckets_, [&](const auto& entry) {
    return refilled(entry.second.tokens, entry.second.updated, now, per_second, burst) >= burst;
  });
  while (buckets_.size() > kMaxAddresses * 3 / 4) buckets_.erase(buckets_.begin());
}

std::size_t ConnectionRateLimiter::addresses() const {
  std::lock_guard lock(mutex_);
  return buckets_.size();
}

}  // namespace pgmux::session
