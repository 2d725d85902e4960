// The wire codec: message boundaries found in any split of the stream, the transaction tracker, startup
// packets.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "pgmux/protocol/builders.hpp"
#include "pgmux/protocol/message_scanner.hpp"
#include "pgmux/protocol/startup.hpp"
#include "pgmux/protocol/tx_tracker.hpp"
#include "pgmux/protocol/wire.hpp"

using namespace pgmux::protocol;

namespace {

// Records what the scanner reports; wants the body of 'Z' only, stops at 'X', as the relay does.
struct Recorder {
  std::vector<std::string> events;
  bool wants_body(char type) const { return type == 'Z'; }
  ScanStep on_message(char type, std::string_view body) {
    events.push_back(std::string(1, type) + ":" + std::string(body));
    return ScanStep::kForward;
  }
  ScanStep on_header(char type, std::uint32_t length, std::string_view) {
    if (type == 'X') return ScanStep::kStop;
    events.push_back(std::string(1, type) + "#" + std::to_string(length));
    return ScanStep::kForward;
  }
};

std::string message(char type, const std::string& body) {
  std::string out;
  MessageBuilder(out, type).bytes(body);
  return out;
}

// Feeds `stream` in chunks of `chunk` bytes the way the relay does: scan, forward, keep the unconsumed tail.
std::vector<std::string> scan_in_chunks(const std::string& stream, std::size_t chunk,
                                        std::size_t* forwarded_total) {
  MessageScanner scanner(1 << 20);
  Recorder recorder;
  std::string pending;
  std::size_t total = 0;
  for (std::size_t pos = 0; pos < stream.size(); pos += chunk) {
    pending += stream.substr(pos, chunk);
    ScanResult r = scanner.scan(pending, recorder);
    REQUIRE_FALSE(r.bad_length);
    total += r.forward;
    pending.erase(0, r.forward);
  }
  if (forwarded_total) *forwarded_total = total;
  return recorder.events;
}

}  // namespace

TEST_CASE("the scanner finds the same messages however the stream is split", "[protocol]") {
  std::string big(40000, 'd');  // larger than a relay buffer: forwarded in pieces, never held whole
  std::string stream = message('Q', std::string("SELECT 1") + '\0') + message('D', big) + message('Z', "I") +
                       message('C', std::string("SELECT 1") + '\0') + message('Z', "T");
  std::vector<std::string> expected = {"Q#13", "D#40004", "Z:I", "C#13", "Z:T"};
  for (std::size_t chunk : {1, 2, 3, 4, 5, 6, 7, 13, 64, 4096, 100000}) {
    INFO("chunk size " << chunk);
    std::size_t forwarded = 0;
    CHECK(scan_in_chunks(stream, chunk, &forwarded) == expected);
    CHECK(forwarded == stream.size());
  }
}

TEST_CASE("a message whose body is wanted is held back until all of it has arrived", "[protocol]") {
  MessageScanner scanner(1 << 20);
  Recorder recorder;
  std::string z = message('Z', "I");
  ScanResult partial = scanner.scan(std::string_view(z).substr(0, 5), recorder);
  CHECK(partial.forward == 0);
  CHECK(recorder.events.empty());
  ScanResult whole = scanner.scan(z, recorder);
  CHECK(whole.forward == z.size());
  CHECK(recorder.events == std::vector<std::string>{"Z:I"});
}

TEST_CASE("a partial header is left unconsumed and the scanner stays at a boundary", "[protocol]") {
  MessageScanner scanner(1 << 20);
  Recorder recorder;
  std::string q = message('Q', std::string("x") + '\0');
  ScanResult r = scanner.scan(std::string_view(q).substr(0, 3), recorder);
  CHECK(r.forward == 0);
  CHECK(scanner.at_boundary());
  r = scanner.scan(std::string_view(q).substr(0, 6), recorder);  // header and one body byte
  CHECK(r.forward == 6);
  CHECK_FALSE(scanner.at_boundary());
}

TEST_CASE("the scanner stops before a message the handler refuses, such as Terminate", "[protocol]") {
  MessageScanner scanner(1 << 20);
  Recorder recorder;
  std::string stream = message('S', "") + message('X', "") + message('Q', std::string("y") + '\0');
  ScanResult r = scanner.scan(stream, recorder);
  CHECK(r.stopped);
  CHECK(r.forward == 5);
}

TEST_CASE("a length below 4 or above the limit is a protocol violation", "[protocol]") {
  Recorder recorder;
  std::string bad = "Q";
  bad.append("\0\0\0\3", 4);
  CHECK(MessageScanner(1 << 20).scan(bad, recorder).bad_length);
  std::string huge = "Q";
  huge.append("\x7f\xff\xff\xff", 4);
  CHECK(MessageScanner(1 << 20).scan(huge, recorder).bad_length);
  CHECK_FALSE(MessageScanner(0x7fffffff).scan(huge, recorder).bad_length);
}

TEST_CASE("the tracker lets a backend go only when every request is answered and the status is idle",
          "[protocol]") {
  TxTracker t;
  CHECK(t.idle());
  t.on_client_message('Q');
  CHECK_FALSE(t.idle());
  t.on_ready_for_query('T');  // BEGIN answered: inside a transaction block
  CHECK_FALSE(t.idle());
  t.on_client_message('Q');
  t.on_ready_for_query('I');  // COMMIT answered
  CHECK(t.idle());
}

TEST_CASE("the tracker counts pipelined Syncs and holds the backend for unsynced extended messages",
          "[protocol]") {
  TxTracker t;
  for (char type : {'P', 'B', 'E', 'S', 'B', 'E', 'S'}) t.on_client_message(type);
  CHECK(t.outstanding() == 2);
  t.on_ready_for_query('I');
  CHECK_FALSE(t.idle());  // the second batch is still running
  t.on_ready_for_query('I');
  CHECK(t.idle());
  t.on_client_message('P');
  t.on_client_message('H');  // Flush without Sync: the unnamed statement lives on this backend
  CHECK_FALSE(t.idle());
  t.on_client_message('S');
  t.on_ready_for_query('I');
  CHECK(t.idle());
}

TEST_CASE("COPY data does not change what the tracker waits for", "[protocol]") {
  TxTracker t;
  t.on_client_message('Q');  // COPY ... FROM STDIN
  for (char type : {'d', 'd', 'c'}) t.on_client_message(type);
  CHECK(t.outstanding() == 1);
  t.on_ready_for_query('I');
  CHECK(t.idle());
}

TEST_CASE("startup packets are parsed: parameters, SSLRequest, CancelRequest", "[protocol]") {
  std::string packet;
  append_startup(packet, {{"user", "app"}, {"database", "db"}, {"application_name", "x"}});
  std::string error;
  auto parsed = parse_startup_packet(std::string_view(packet).substr(4), error);
  REQUIRE(parsed);
  CHECK(parsed->kind == StartupPacket::Kind::startup);
  CHECK(parsed->version == kProtocol30);
  REQUIRE(parsed->param("user"));
  CHECK(*parsed->param("user") == "app");
  CHECK(*parsed->param("database") == "db");
  CHECK(parsed->param("options") == nullptr);

  std::string cancel;
  append_cancel_request(cancel, 1234, 5678);
  auto c = parse_startup_packet(std::string_view(cancel).substr(4), error);
  REQUIRE(c);
  CHECK(c->kind == StartupPacket::Kind::cancel_request);
  CHECK(c->cancel_pid == 1234);
  CHECK(c->cancel_key == 5678);

  std::string ssl(4, '\0');
  write_u32(ssl.data(), kSslRequestCode);
  auto s = parse_startup_packet(ssl, error);
  REQUIRE(s);
  CHECK(s->kind == StartupPacket::Kind::ssl_request);
}

TEST_CASE("malformed startup packets are rejected with a reason", "[protocol]") {
  std::string error;
  std::string unterminated(4, '\0');
  write_u32(unterminated.data(), kProtocol30);
  unterminated += "user";
  CHECK_FALSE(parse_startup_packet(unterminated, error));
  CHECK_FALSE(error.empty());

  std::string v2(4, '\0');
  write_u32(v2.data(), 2 << 16);
  v2.push_back('\0');
  CHECK_FALSE(parse_startup_packet(v2, error));
  CHECK(error.find("unsupported frontend protocol 2.0") != std::string::npos);

  CHECK_FALSE(parse_startup_packet("ab", error));
}

TEST_CASE("an ErrorResponse pgmux builds carries severity, SQLSTATE and message", "[protocol]") {
  std::string out;
  append_error(out, "FATAL", sqlstate::kTooManyConnections, "no more connections allowed");
  REQUIRE(out[0] == 'E');
  CHECK(read_u32(out.data() + 1) == out.size() - 1);
  ErrorFields f = parse_error_fields(std::string_view(out).substr(5));
  CHECK(f.severity == "FATAL");
  CHECK(f.sqlstate == "53300");
  CHECK(f.message == "no more connections allowed");
}

TEST_CASE("startup options are read as Postgres reads them", "[protocol]") {
  using Settings = std::vector<std::pair<std::string, std::string>>;
  CHECK(parse_startup_options("-c TimeZone=UTC") == Settings{{"TimeZone", "UTC"}});
  CHECK(parse_startup_options("-cDateStyle=ISO --search-path=a,b  -c x=1") ==
        Settings{{"DateStyle", "ISO"}, {"search_path", "a,b"}, {"x", "1"}});
  CHECK(parse_startup_options("-c application_name=my\\ app") == Settings{{"application_name", "my app"}});
  CHECK(parse_startup_options("-d 5 -c") == Settings{});
  CHECK(parse_startup_options("").empty());
}
