// client_connection_rate_per_ip: a token bucket per client address, in a table of bounded size.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>

namespace pgmux::session {

class ConnectionRateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  // At most this many addresses are remembered; beyond it, those whose bucket has refilled (the same as not
  // remembered) are forgotten first.
  static constexpr std::size_t kMaxAddresses = 65536;

  // Takes one token from `address`'s bucket (which holds up to `burst` and refills at `per_second`); false
  // when it is empty. per_second 0: always true, nothing remembered.
  bool admit(const std::string& address, double per_second, int burst, Clock::time_point now);
  std::size_t addresses() const;

 private:
  struct Bucket {
    double tokens;
    Clock::time_point updated;
  };
  void make_room(double per_second, int burst, Clock::time_point now);

  mutable std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace pgmux::session
