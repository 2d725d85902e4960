// A raw TCP connection, for bytes and message sequences libpq would never send.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace pgmux::test {

class RawSocket {
 public:
  explicit RawSocket(int port);  // to 127.0.0.1
  ~RawSocket();
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  bool connected() const { return connected_; }
  bool send_all(const std::string& bytes);
  // TCP_NODELAY: each send_all leaves at once as its own segment, however small.
  bool set_no_delay();
  // Sends a startup packet and reads up to the first ReadyForQuery: a login that is asked no password
  // (auth_type trust).
  bool log_in(const std::string& user, const std::string& database);
  // Sends `bytes` and the end of the stream (FIN) right behind them, as a client that exits mid-write would.
  bool send_and_close_write(const std::string& bytes);
  // Everything the peer sends until it closes; false if it is still open at the deadline.
  bool read_until_closed(std::string& received, std::chrono::milliseconds timeout);
  // Appends what arrives until `received` holds `count` ReadyForQuery messages from the start (counted on
  // message boundaries); false on timeout or close.
  bool read_until_ready(std::string& received, int count, std::chrono::milliseconds timeout);
  // The next whole message (type byte, then its body without the length); false on timeout or close.
  // `raw` gets the whole message as sent, header included.
  bool read_message(char& type, std::string& body, std::chrono::milliseconds timeout,
                    std::string* raw = nullptr);

 private:
  enum class Got { data, closed, error, timeout };
  // Waits for input until `deadline` and appends one read of it.
  Got receive_some(std::string& received, std::chrono::steady_clock::time_point deadline);

  int fd_;
  bool connected_ = false;
  std::string pending_;  // read_message: bytes received beyond the last message returned
};

std::string be32(std::uint32_t v);
std::string be16(std::uint16_t v);

// The SQLSTATE of an ErrorResponse at the start of `bytes`, or "".
std::string error_response_sqlstate(const std::string& bytes);

}  // namespace pgmux::test
