// A minimal HTTP client for tests of pgmux's HTTP listener.
#pragma once

#include <string>

namespace pgmux::test {

struct HttpReply {
  int status = 0;  // 0: no answer
  std::string body;
};

// One GET to 127.0.0.1 with Connection: close, bounded by a 10 s receive timeout.
HttpReply http_get(int port, const std::string& path);

// The value of one sample line ("name{labels} value") in a Prometheus text page; -1 when absent.
double sample(const std::string& page, const std::string& series);

}  // namespace pgmux::test
