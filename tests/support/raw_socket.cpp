// A raw TCP connection, for bytes and message sequences libpq would never send.
#include "raw_socket.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "pgmux/protocol/builders.hpp"

namespace pgmux::test {

using Clock = std::chrono::steady_clock;

RawSocket::RawSocket(int port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

RawSocket::~RawSocket() {
  close(fd_);
}

bool RawSocket::send_all(const std::string& bytes) {
  return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
}

bool RawSocket::set_no_delay() {
  int on = 1;
  return setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) == 0;
}

bool RawSocket::log_in(const std::string& user, const std::string& database) {
  std::string startup;
  pgmux::protocol::append_startup(startup, {{"user", user}, {"database", database}});
  std::string welcome;
  return connected_ && send_all(startup) && read_until_ready(welcome, 1, std::chrono::seconds(10));
}

bool RawSocket::send_and_close_write(const std::string& bytes) {
  return send_all(bytes) && ::shutdown(fd_, SHUT_WR) == 0;
}

RawSocket::Got RawSocket::receive_some(std::string& received, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return Got::timeout;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char chunk[4096];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n == 0) return Got::closed;
    // Closed with unread input: a reset also counts as closed.
    if (n < 0) return errno == ECONNRESET ? Got::closed : Got::error;
    received.append(chunk, n);
    return Got::data;
  }
}

bool RawSocket::read_until_closed(std::string& received, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    switch (receive_some(received, deadline)) {
      case Got::data:
        continue;
      case Got::closed:
        return true;
      case Got::error:
      case Got::timeout:
        return false;
    }
  }
}

namespace {
int count_ready(const std::string& bytes) {
  int ready = 0;
  std::size_t pos = 0;
  while (pos + 5 <= bytes.size()) {
    std::uint32_t length;  // copied out: a message's length field is rarely 4-byte aligned (UBSan)
    std::memcpy(&length, bytes.data() + pos + 1, sizeof length);
    length = ntohl(length);
    if (pos + 1 + length > bytes.size()) break;
    ready += bytes[pos] == 'Z';
    pos += 1 + length;
  }
  return ready;
}
}  // namespace

bool RawSocket::read_until_ready(std::string& received, int count, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (count_ready(received) < count)
    if (receive_some(received, deadline) != Got::data) return false;
  return true;
}

bool RawSocket::read_message(char& type, std::string& body, std::chrono::milliseconds timeout,
                             std::string* raw) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (pending_.size() >= 5) {
      std::uint32_t length;  // unaligned in the buffer: copied out, not loaded through a cast
      std::memcpy(&length, pending_.data() + 1, sizeof length);
      length = ntohl(length);
      if (length >= 4 && pending_.size() >= 1 + static_cast<std::size_t>(length)) {
        type = pending_[0];
        body = pending_.substr(5, length - 4);
        if (raw) *raw = pending_.substr(0, 1 + length);
        pending_.erase(0, 1 + length);
        return true;
      }
    }
    if (receive_some(pending_, deadline) != Got::data) return false;
  }
}

std::string be32(std::uint32_t v) {
  std::uint32_t n = htonl(v);
  return std::string(reinterpret_cast<const char*>(&n), 4);
}

std::string be16(std::uint16_t v) {
  std::uint16_t n = htons(v);
  return std::string(reinterpret_cast<const char*>(&n), 2);
}

std::string error_response_sqlstate(const std::string& bytes) {
  if (bytes.size() < 5 || bytes[0] != 'E') return "";
  std::size_t pos = 5;
  while (pos < bytes.size() && bytes[pos] != '\0') {
    char field = bytes[pos++];
    std::size_t end = bytes.find('\0', pos);
    if (end == std::string::npos) return "";
    if (field == 'C') return bytes.substr(pos, end - pos);
    pos = end + 1;
  }
  return "";
}

}  // namespace pgmux::test
