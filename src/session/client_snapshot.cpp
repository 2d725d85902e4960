// Addresses for SHOW CLIENTS and SHOW SERVERS, in PgBouncer's addr/port column form.
#include "session/client_snapshot.hpp"

#include <charconv>

namespace pgmux::session {

void split_address(const std::string& text, std::string& addr, std::uint16_t& port) {
  std::size_t colon = text.rfind(':');
  std::uint16_t parsed = 0;
  const char* end = text.data() + text.size();
  if (colon == std::string::npos || std::from_chars(text.data() + colon + 1, end, parsed).ptr != end) {
    addr = text;
    port = 0;
    return;
  }
  addr = text.substr(0, colon);
  if (addr.size() >= 2 && addr.front() == '[' && addr.back() == ']') addr = addr.substr(1, addr.size() - 2);
  port = parsed;
}

void fill_endpoints(const net::Socket& socket, std::string& addr, std::uint16_t& port,
                    std::string& local_addr, std::uint16_t& local_port) {
  error_code ec;
  tcp::endpoint remote = socket.remote_endpoint(ec);
  if (!ec) {
    addr = remote.address().to_string();
    port = remote.port();
  }
  tcp::endpoint local = socket.local_endpoint(ec);
  if (!ec) {
    local_addr = local.address().to_string();
    local_port = local.port();
  }
}

}  // namespace pgmux::session
