// A minimal HTTP client for tests of pgmux's HTTP listener.
#pragma once

#include <string>

namespace pgmux::test {

// Not named HttpReply: http_client.hpp has a larger one of that name, and two definitions of one class break
// the one-definition rule (their out-of-line constructors are merged at link time: AddressSanitizer caught
// http_get's reply built by the other's constructor, overflowing the stack, in an -O0 build).
struct GetReply {
  int status = 0;  // 0: no answer
  std::string body;
};

// One GET to 127.0.0.1 with Connection: close, bounded by a 10 s receive timeout.
GetReply http_get(int port, const std::string& path);

// The value of one sample line ("name{labels} value") in a Prometheus text page; -1 when absent.
double sample(const std::string& page, const std::string& series);

}  // namespace pgmux::test
