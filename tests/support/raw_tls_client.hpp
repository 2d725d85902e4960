// A Postgres client over TLS written with OpenSSL by hand: direct TLS or after SSLRequest, any ALPN offer.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <string>
#include <vector>

#include "websocket_client.hpp"  // WireMessage

namespace pgmux::test {

struct TlsClientOptions {
  bool direct = true;                              // ClientHello first (libpq 17's sslnegotiation=direct)
  std::vector<std::string> alpn = {"postgresql"};  // offered in this order; empty: no ALPN extension at all
  std::string ca_file;                             // when set, the server's certificate must chain to it
  std::string cert_file, key_file;                 // a client certificate, when set
  std::chrono::milliseconds timeout = std::chrono::seconds(10);  // for the SSLRequest and the handshake
};

class RawTlsClient {
 public:
  // Connects to 127.0.0.1:port and runs the handshake; connected() says whether it completed.
  explicit RawTlsClient(int port, TlsClientOptions options = {});
  ~RawTlsClient();
  RawTlsClient(const RawTlsClient&) = delete;
  RawTlsClient& operator=(const RawTlsClient&) = delete;

  bool connected() const { return connected_; }
  // Why the handshake did not complete: OpenSSL's error (an alert the server sent shows here), "closed", or
  // the answer to the SSLRequest.
  const std::string& failure() const { return failure_; }
  // The protocol the server selected by ALPN, "" for none.
  std::string alpn_selected() const;
  // The SHA-256 of the server's certificate: its tls-server-end-point for SCRAM-SHA-256-PLUS (RFC 5929), as
  // long as it is signed with SHA-256 (as TestCerts signs them).
  std::string server_end_point() const;

  // Writes all of `bytes` as TLS records, in as few as OpenSSL makes of one write.
  bool send(const std::string& bytes);
  // The next whole message, however the records cut it; false on timeout or close.
  bool read_message(WireMessage& message, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Messages until (and including) ReadyForQuery; false on timeout or close.
  bool read_until_ready(std::vector<WireMessage>& messages,
                        std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Messages until the server closes (close_notify, end of file or reset); false if still open at timeout.
  bool read_until_closed(std::vector<WireMessage>& messages,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  enum class Got { data, closed, timeout };
  // Runs one SSL call (a handshake step, a read or a write) again and again, waiting on the socket as
  // OpenSSL asks, until it returns > 0, fails, or `deadline` passes.
  template <typename Call>
  Got drive(Call call, std::chrono::steady_clock::time_point deadline);
  // Appends one read's worth of plaintext to pending_.
  Got receive_some(std::chrono::steady_clock::time_point deadline);
  // Moves the first whole message out of pending_; false when there is none yet.
  bool take_message(WireMessage& message);

  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  bool connected_ = false;
  std::string failure_;
  std::string pending_;  // bytes received but not yet returned as messages
};

}  // namespace pgmux::test
