// libFuzzer harness: the relay's frame scanner and the readers of the few bodies pgmux inspects, on any bytes
// fed in any split, checked against a plain walk of the same stream.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pgmux/protocol/builders.hpp"
#include "pgmux/protocol/message_scanner.hpp"
#include "pgmux/protocol/session_params.hpp"
#include "pgmux/protocol/sql_keywords.hpp"
#include "pgmux/protocol/tx_tracker.hpp"

namespace {

using namespace pgmux::protocol;

constexpr std::uint32_t kMaxLength = 1 << 16;

// What the relay looks at whole, on both sides: ReadyForQuery, ParameterStatus, errors and notices, queries.
bool inspected(char type) {
  return type == 'Z' || type == 'S' || type == 'E' || type == 'N' || type == 'Q';
}

struct Handler {
  std::vector<std::pair<char, std::uint32_t>> seen;  // every message reported, in order
  TxTracker tracker;

  bool wants_body(char type) { return inspected(type); }

  ScanStep on_message(char type, std::string_view body) {
    seen.emplace_back(type, static_cast<std::uint32_t>(body.size() + 4));
    switch (type) {
      case 'Z':
        tracker.on_ready_for_query(body.empty() ? 'E' : body[0]);
        break;
      case 'S': {
        std::string_view name, value;
        if (parse_parameter_status(body, name, value)) (void)tracked_param(name);
        break;
      }
      case 'E':
      case 'N':
        (void)parse_error_fields(body);
        break;
      case 'Q': {
        tracker.on_client_message(type);
        (void)session_effect(body);
        (void)may_drop_statements(body);
        (void)drops_all_statements(body);
        (void)deallocate_target(body);
        break;
      }
    }
    return ScanStep::kForward;
  }

  ScanStep on_header(char type, std::uint32_t length, std::string_view body_start) {
    if (body_start.size() > length - 4) std::abort();
    seen.emplace_back(type, length);
    tracker.on_client_message(type);
    return ScanStep::kForward;
  }
};

// The messages a scanner must report for the whole stream: up to the first bad length; a message it wants
// whole only once all of it is there.
std::vector<std::pair<char, std::uint32_t>> walk(std::string_view stream, bool& bad_length) {
  std::vector<std::pair<char, std::uint32_t>> out;
  bad_length = false;
  std::size_t pos = 0;
  while (stream.size() - pos >= kHeaderSize) {
    const char type = stream[pos];
    const std::uint32_t length = read_u32(stream.data() + pos + 1);
    if (length < 4 || length > kMaxLength) {
      bad_length = true;
      break;
    }
    if (inspected(type) && stream.size() - pos - 1 < length) break;
    out.emplace_back(type, length);
    pos += 1 + static_cast<std::size_t>(length);
    if (pos > stream.size()) break;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  // The first byte is how many bytes each read brings (1 to 256): every split of a header or body happens.
  const std::size_t chunk = static_cast<std::size_t>(data[0]) + 1;
  const std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);

  MessageScanner scanner(kMaxLength);
  Handler handler;
  std::string buffered;  // read but not yet forwarded, as in the relay's buffer
  bool bad_length = false;
  for (std::size_t read = 0; read < stream.size() && !bad_length;) {
    const std::size_t n = std::min(chunk, stream.size() - read);
    buffered.append(stream.substr(read, n));
    read += n;
    const ScanResult result = scanner.scan(buffered, handler);
    if (result.forward > buffered.size() || result.stopped) std::abort();
    buffered.erase(0, result.forward);
    bad_length = result.bad_length;
  }

  bool expected_bad = false;
  const auto expected = walk(stream, expected_bad);
  if (handler.seen != expected || bad_length != expected_bad) std::abort();
  return 0;
}
