// A Postgres client over TLS written with OpenSSL by hand: direct TLS or after SSLRequest, any ALPN offer.
#include "raw_tls_client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "raw_socket.hpp"

namespace pgmux::test {

using Clock = std::chrono::steady_clock;

namespace {

int left_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Waits until `fd` is ready for `events`; false at the deadline.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const int left = left_ms(deadline);
    if (left == 0) return false;
    pollfd p{fd, events, 0};
    if (poll(&p, 1, left) > 0) return true;
  }
}

std::string openssl_error() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "closed";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

}  // namespace

template <typename Call>
RawTlsClient::Got RawTlsClient::drive(Call call, Clock::time_point deadline) {
  for (;;) {
    const int result = call();
    if (result > 0) return Got::data;
    switch (SSL_get_error(ssl_, result)) {
      case SSL_ERROR_WANT_READ:
        if (!wait_for(fd_, POLLIN, deadline)) return Got::timeout;
        continue;
      case SSL_ERROR_WANT_WRITE:
        if (!wait_for(fd_, POLLOUT, deadline)) return Got::timeout;
        continue;
      default:  // close_notify, end of file, reset, an alert
        return Got::closed;
    }
  }
}

RawTlsClient::RawTlsClient(int port, TlsClientOptions options) {
  const auto deadline = Clock::now() + options.timeout;
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    failure_ = std::string("connect: ") + std::strerror(errno);
    return;
  }
  const int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // pipelined writes go out at once
  fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
  if (!options.direct) {
    const std::string request = be32(8) + be32(80877103);
    if (::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
      failure_ = "SSLRequest not sent";
      return;
    }
    char answer = 0;
    if (!wait_for(fd_, POLLIN, deadline) || ::recv(fd_, &answer, 1, 0) != 1) {
      failure_ = "no answer to the SSLRequest";
      return;
    }
    if (answer != 'S') {
      failure_ = std::string("SSLRequest answered '") + answer + "'";
      return;
    }
  }
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (!options.ca_file.empty()) {
    SSL_CTX_load_verify_locations(ctx_, options.ca_file.c_str(), nullptr);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
  }
  if (!options.cert_file.empty()) {
    SSL_CTX_use_certificate_chain_file(ctx_, options.cert_file.c_str());
    SSL_CTX_use_PrivateKey_file(ctx_, options.key_file.c_str(), SSL_FILETYPE_PEM);
  }
  ssl_ = SSL_new(ctx_);
  SSL_set_fd(ssl_, fd_);
  SSL_set_tlsext_host_name(ssl_, "localhost");
  if (!options.alpn.empty()) {
    std::string wire;  // each name preceded by its length (RFC 7301)
    for (const auto& name : options.alpn) wire += static_cast<char>(name.size()) + name;
    SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(wire.data()),
                        static_cast<unsigned int>(wire.size()));
  }
  ERR_clear_error();
  switch (drive([&] { return SSL_connect(ssl_); }, deadline)) {
    case Got::data:
      connected_ = true;
      break;
    case Got::closed:
      failure_ = openssl_error();
      break;
    case Got::timeout:
      failure_ = "handshake timed out";
      break;
  }
}

RawTlsClient::~RawTlsClient() {
  if (ssl_) SSL_free(ssl_);
  if (ctx_) SSL_CTX_free(ctx_);
  if (fd_ >= 0) close(fd_);
}

std::string RawTlsClient::alpn_selected() const {
  const unsigned char* name = nullptr;
  unsigned int length = 0;
  if (ssl_) SSL_get0_alpn_selected(ssl_, &name, &length);
  return name ? std::string(reinterpret_cast<const char*>(name), length) : std::string();
}

std::string RawTlsClient::server_end_point() const {
  X509* cert = ssl_ ? SSL_get0_peer_certificate(ssl_) : nullptr;
  if (!cert) return "";
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  X509_digest(cert, EVP_sha256(), hash, &length);
  return std::string(reinterpret_cast<const char*>(hash), length);
}

bool RawTlsClient::send(const std::string& bytes) {
  if (!connected_) return false;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    std::size_t written = 0;
    auto write = [&] { return SSL_write_ex(ssl_, bytes.data() + sent, bytes.size() - sent, &written); };
    if (drive(write, deadline) != Got::data) return false;
    sent += written;
  }
  return true;
}

RawTlsClient::Got RawTlsClient::receive_some(Clock::time_point deadline) {
  if (!connected_) return Got::closed;
  char chunk[16384];
  std::size_t n = 0;
  const Got got = drive([&] { return SSL_read_ex(ssl_, chunk, sizeof chunk, &n); }, deadline);
  if (got == Got::data) pending_.append(chunk, n);
  if (got == Got::closed) ERR_clear_error();
  return got;
}

bool RawTlsClient::take_message(WireMessage& message) {
  if (pending_.size() < 5) return false;
  std::uint32_t length;  // unaligned in the buffer: copied out
  std::memcpy(&length, pending_.data() + 1, sizeof length);
  length = ntohl(length);
  if (length < 4 || pending_.size() < 1 + static_cast<std::size_t>(length)) return false;
  message.type = pending_[0];
  message.body = pending_.substr(5, length - 4);
  pending_.erase(0, 1 + length);
  return true;
}

bool RawTlsClient::read_message(WireMessage& message, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!take_message(message))
    if (receive_some(deadline) != Got::data) return false;
  return true;
}

bool RawTlsClient::read_until_ready(std::vector<WireMessage>& messages, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    WireMessage m;
    if (!read_message(m, std::chrono::milliseconds(left_ms(deadline)))) return false;
    messages.push_back(m);
    if (m.type == 'Z') return true;
  }
}

bool RawTlsClient::read_until_closed(std::vector<WireMessage>& messages, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const Got got = receive_some(deadline);
    for (WireMessage m; take_message(m);) messages.push_back(m);
    if (got != Got::data) return got == Got::closed;
  }
}

}  // namespace pgmux::test
