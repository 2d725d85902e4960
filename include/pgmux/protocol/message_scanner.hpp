// Finds message boundaries in a byte stream without copying: headers are parsed, bodies are passed through.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pgmux/protocol/wire.hpp"

namespace pgmux::protocol {

// Scans a run of buffered bytes, reporting each message to a handler, and says how many bytes can be
// forwarded now. A message whose body the handler does not need is forwarded as it arrives, in pieces if it
// is larger than the buffer (a 1 GB DataRow never has to fit in memory). A message the handler wants whole
// (say ReadyForQuery) is held back until all of it is buffered; such messages must be small.
//
// Handler interface (all inline, so the hot path is one pass over the headers):
//   bool wants_body(char type);                         // deliver this message whole to on_message?
//   ScanStep on_message(char type, std::string_view body);
//   ScanStep on_header(char type, std::uint32_t length, std::string_view body_start);
//                                                        // for messages passed through unseen; `body_start`
//                                                        // is as much of the body as is buffered (maybe
//                                                        none)
//   void on_body_tail(std::string_view bytes);          // optional: the rest of such a body, piece by piece
enum class ScanStep {
  kForward,  // forward this message with the rest
  kStop,     // stop before this message; it stays unconsumed for the caller to handle
  kWait,     // stop before this message until more of it is buffered (the handler needs more of its body)
};

struct ScanResult {
  std::size_t forward = 0;  // bytes from the start of the input that may be forwarded
  bool stopped = false;     // the handler asked to stop at a message boundary
  bool bad_length = false;  // a length field below 4 or above the limit: the stream cannot be trusted
};

class MessageScanner {
 public:
  explicit MessageScanner(std::uint32_t max_length) : max_length_(max_length) {}

  template <class Handler>
  ScanResult scan(std::string_view in, Handler& handler) {
    ScanResult result;
    std::size_t pos = 0;
    while (pos < in.size()) {
      if (body_left_ > 0) {  // the tail of a message already reported
        std::size_t n = std::min<std::size_t>(body_left_, in.size() - pos);
        if constexpr (requires { handler.on_body_tail(in); }) handler.on_body_tail(in.substr(pos, n));
        body_left_ -= n;
        pos += n;
        continue;
      }
      if (in.size() - pos < kHeaderSize) break;
      char type = in[pos];
      std::uint32_t length = read_u32(in.data() + pos + 1);
      if (length < 4 || length > max_length_) {
        result.bad_length = true;
        break;
      }
      std::size_t body_size = length - 4;
      if (handler.wants_body(type)) {
        if (in.size() - pos - kHeaderSize < body_size) break;  // wait for the rest
        if (handler.on_message(type, in.substr(pos + kHeaderSize, body_size)) == ScanStep::kStop) {
          result.stopped = true;
          break;
        }
        pos += kHeaderSize + body_size;
      } else {
        std::size_t buffered = std::min(body_size, in.size() - pos - kHeaderSize);
        ScanStep step = handler.on_header(type, length, in.substr(pos + kHeaderSize, buffered));
        if (step != ScanStep::kForward) {
          result.stopped = step == ScanStep::kStop;
          break;
        }
        pos += kHeaderSize;
        body_left_ = body_size;
      }
    }
    result.forward = pos;
    return result;
  }

  // True between messages: nothing of a message is half forwarded.
  bool at_boundary() const { return body_left_ == 0; }
  // The caller consumed the start of a message itself: the next `n` bytes are the rest of its body, to be
  // forwarded unseen.
  void pass_through(std::uint32_t n) { body_left_ = n; }

 private:
  std::uint32_t max_length_;
  std::uint32_t body_left_ = 0;
};

}  // namespace pgmux::protocol
