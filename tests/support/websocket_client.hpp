// A Postgres client over WebSocket (Beast), speaking the wire protocol by hand, every wait bounded.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace pgmux::test {

// One backend message as received.
struct WireMessage {
  char type = 0;
  std::string body;
};

class WebSocketClient {
 public:
  // Connects to 127.0.0.1:port and upgrades at `path`; connected() says whether that worked within 10 s.
  explicit WebSocketClient(int port, const std::string& path = "/v2");
  ~WebSocketClient();
  WebSocketClient(const WebSocketClient&) = delete;
  WebSocketClient& operator=(const WebSocketClient&) = delete;

  bool connected() const { return connected_; }
  // The HTTP status of a refused upgrade (0 when it was accepted or nothing came).
  int refused_status() const { return refused_status_; }

  // Sends `bytes` as one binary frame.
  bool send(const std::string& bytes);
  // The next whole message, however the frames cut it; false on timeout or close.
  bool read_message(WireMessage& message, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Messages until (and including) ReadyForQuery or a FATAL error's close; false on timeout.
  bool read_until_ready(std::vector<WireMessage>& messages,
                        std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Whether the server closes the WebSocket within `timeout` (messages before the close are dropped).
  bool closed_by_server(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Drops the TCP connection without a close handshake, as a vanished client does.
  void drop();

 private:
  struct State;
  std::unique_ptr<State> state_;
  std::string pending_;  // bytes received but not yet returned as messages
  bool connected_ = false;
  bool closed_ = false;
  int refused_status_ = 0;
};

// Wire messages a client sends.
std::string wire_message(char type, const std::string& body);  // type, length, body
std::string startup_message(const std::string& user, const std::string& database);
std::string password_message(const std::string& password);
std::string query_message(const std::string& sql);
std::string terminate_message();

// The field `code` ('C' SQLSTATE, 'M' message...) of an ErrorResponse body.
std::string error_field(const std::string& body, char code);
// The values of the DataRows in `messages`, each row's columns joined by '|' (NULL as "<null>").
std::vector<std::string> data_rows(const std::vector<WireMessage>& messages);

}  // namespace pgmux::test
