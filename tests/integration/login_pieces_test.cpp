// Logins whose messages arrive cut anywhere (header apart from body, a body in two, a byte per segment) or
// pipelined behind one another: pgmux reads a login message's body with what the socket has, then waits for
// the rest, and must neither lose a byte nor read past the message.
#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "libpq.hpp"
#include "pgmux.hpp"
#include "pgmux/auth/crypto.hpp"
#include "pgmux/auth/scram.hpp"
#include "raw_socket.hpp"
#include "raw_tls_client.hpp"
#include "scram_login.hpp"
#include "test_certs.hpp"
#include "websocket_client.hpp"

using namespace pgmux::test;
using namespace std::chrono_literals;

namespace {

// Where a client cuts each message it sends into separate writes.
enum class Cut { whole, header_apart, inside_header, body_in_two, first_body_byte_apart, byte_per_write };

const Cut kAllCuts[] = {Cut::whole,       Cut::header_apart,          Cut::inside_header,
                        Cut::body_in_two, Cut::first_body_byte_apart, Cut::byte_per_write};

const char* name_of(Cut cut) {
  switch (cut) {
    case Cut::whole:
      return "whole";
    case Cut::header_apart:
      return "header apart from the body";
    case Cut::inside_header:
      return "cut inside the header";
    case Cut::body_in_two:
      return "body cut in the middle";
    case Cut::first_body_byte_apart:
      return "header and one body byte, then the rest";
    case Cut::byte_per_write:
      return "one byte per write";
  }
  return "?";
}

// A raw client with Nagle off, so that every piece leaves as its own segment with no pause in between, that
// cuts what it sends as `cut` says; it reads as scram_login expects.
class PiecewiseClient {
 public:
  PiecewiseClient(int port, Cut cut) : raw_(port), cut_(cut) {
    connected_ = raw_.connected() && raw_.set_no_delay();
  }
  bool connected() const { return connected_; }

  // One message, or several pipelined (cut as one). A startup packet's header is its 4-byte length (it starts
  // with a zero byte); a typed message's is 5 bytes.
  bool send(const std::string& bytes) {
    const std::size_t header = !bytes.empty() && bytes[0] == '\0' ? 4 : 5;
    std::vector<std::size_t> cuts;
    switch (cut_) {
      case Cut::whole:
        break;
      case Cut::header_apart:
        cuts = {header};
        break;
      case Cut::inside_header:
        cuts = {2};
        break;
      case Cut::body_in_two:
        cuts = {header + (bytes.size() - header) / 2};
        break;
      case Cut::first_body_byte_apart:
        cuts = {header + 1};
        break;
      case Cut::byte_per_write:
        for (std::size_t i = 1; i < bytes.size(); ++i) cuts.push_back(i);
        break;
    }
    std::size_t from = 0;
    for (std::size_t to : cuts) {
      if (to <= from || to >= bytes.size()) continue;
      if (!raw_.send_all(bytes.substr(from, to - from))) return false;
      from = to;
    }
    return raw_.send_all(bytes.substr(from));
  }

  bool read_message(WireMessage& m, std::chrono::milliseconds timeout = 10s) {
    return raw_.read_message(m.type, m.body, timeout);
  }

  // Up to ReadyForQuery; an ErrorResponse the server closes after also ends it.
  bool read_until_ready(std::vector<WireMessage>& messages, std::chrono::milliseconds timeout = 10s) {
    WireMessage m;
    while (read_message(m, timeout)) {
      messages.push_back(m);
      if (m.type == 'Z') return true;
    }
    return !messages.empty() && messages.back().type == 'E';
  }

  bool read_until_closed(std::string& received) { return raw_.read_until_closed(received, 10s); }

 private:
  RawSocket raw_;
  Cut cut_;
  bool connected_ = false;
};

std::uint32_t auth_code(const WireMessage& m) {
  std::uint32_t code = 0;
  if (m.body.size() >= 4) std::memcpy(&code, m.body.data(), 4);
  return ntohl(code);
}

// What follows a login or a query up to ReadyForQuery: the first value of the first DataRow ("" if none), or
// "E" and the SQLSTATE of the first error, or a description of what went wrong.
std::string value_until_ready(PiecewiseClient& client) {
  std::vector<WireMessage> messages;
  if (!client.read_until_ready(messages)) return "no ReadyForQuery";
  for (const WireMessage& m : messages)
    if (m.type == 'E') return "E" + error_field(m.body, 'C');
  std::vector<std::string> rows = data_rows(messages);
  return rows.empty() ? "" : rows.front();
}

std::string query_value(PiecewiseClient& client, const std::string& sql) {
  if (!client.send(query_message(sql))) return "query not sent";
  return value_until_ready(client);
}

// Postgres's md5 answer: "md5" + md5(md5(password + user) + salt).
std::string md5_answer(const std::string& user, const std::string& password, const std::string& salt) {
  return "md5" + pgmux::auth::md5_hex(pgmux::auth::md5_hex(password + user) + salt);
}

// An md5 login to ReadyForQuery: "" on success, else the SQLSTATE or what went wrong.
std::string md5_login(PiecewiseClient& client, const std::string& user, const std::string& password) {
  if (!client.send(startup_message(user, "app"))) return "startup not sent";
  WireMessage m;
  if (!client.read_message(m)) return "no answer to the startup packet";
  if (m.type != 'R' || auth_code(m) != 5 || m.body.size() != 8) return "expected AuthenticationMD5Password";
  if (!client.send(password_message(md5_answer(user, password, m.body.substr(4))))) return "answer not sent";
  return value_until_ready(client);
}

// A cleartext login (auth_type plain) to ReadyForQuery, likewise.
std::string cleartext_login(PiecewiseClient& client, const std::string& user, const std::string& password) {
  if (!client.send(startup_message(user, "app"))) return "startup not sent";
  WireMessage m;
  if (!client.read_message(m)) return "no answer to the startup packet";
  if (m.type != 'R' || auth_code(m) != 3) return "expected AuthenticationCleartextPassword";
  if (!client.send(password_message(password))) return "password not sent";
  return value_until_ready(client);
}

// A libpq client logging in and querying as usual: pgmux still serves everyone.
void still_serves_a_normal_client(Pgmux& mux) {
  Connection normal(mux.conninfo());
  REQUIRE(normal.ok());
  CHECK(normal.value("SELECT 'still served'") == "still served");
}

// Every cut, a few times each: when pgmux's read of a body finds only part of it depends on timing.
constexpr int kRounds = 3;

}  // namespace

TEST_CASE("a SCRAM login whose messages arrive cut anywhere logs in, and its query returns the row",
          "[login][pieces]") {
  Pgmux mux(TestPostgres::shared());
  INFO(mux.log_tail());
  for (Cut cut : kAllCuts)
    for (int round = 0; round < kRounds; ++round) {
      INFO(name_of(cut) << ", round " << round);
      PiecewiseClient client(mux.port(), cut);
      REQUIRE(client.connected());
      REQUIRE(scram_login(client, "app", "app-secret", "app") == "");
      CHECK(query_value(client, "SELECT 'scram as ' || current_user") == "scram as app");
    }
  still_serves_a_normal_client(mux);
}

TEST_CASE("an md5 login whose messages arrive cut anywhere logs in, and its query returns the row",
          "[login][pieces]") {
  Pgmux mux(TestPostgres::shared());
  INFO(mux.log_tail());
  for (Cut cut : kAllCuts)
    for (int round = 0; round < kRounds; ++round) {
      INFO(name_of(cut) << ", round " << round);
      PiecewiseClient client(mux.port(), cut);
      REQUIRE(client.connected());
      REQUIRE(md5_login(client, "md5user", "md5-secret") == "");
      CHECK(query_value(client, "SELECT 'md5 as ' || current_user") == "md5 as md5user");
    }
  // A wrong answer, cut the same ways, is still refused.
  PiecewiseClient wrong(mux.port(), Cut::byte_per_write);
  REQUIRE(wrong.connected());
  CHECK(md5_login(wrong, "md5user", "wrong") == "E28P01");
  still_serves_a_normal_client(mux);
}

TEST_CASE("a cleartext login (auth_type plain) whose messages arrive cut anywhere logs in",
          "[login][pieces]") {
  Pgmux mux(TestPostgres::shared(), {.auth_type = "plain"});
  INFO(mux.log_tail());
  for (Cut cut : kAllCuts)
    for (int round = 0; round < kRounds; ++round) {
      INFO(name_of(cut) << ", round " << round);
      PiecewiseClient client(mux.port(), cut);
      REQUIRE(client.connected());
      REQUIRE(cleartext_login(client, "plainuser", "plain-secret") == "");
      CHECK(query_value(client, "SELECT 'plain as ' || current_user") == "plain as plainuser");
    }
  still_serves_a_normal_client(mux);
}

TEST_CASE("pipelined logins: the startup packet, the answer and a query in one write, or a byte per write",
          "[login][pieces]") {
  for (Cut cut : {Cut::whole, Cut::byte_per_write}) {
    INFO(name_of(cut));
    SECTION(std::string("auth_type plain: startup packet, password and query together, ") + name_of(cut)) {
      Pgmux mux(TestPostgres::shared(), {.auth_type = "plain"});
      INFO(mux.log_tail());
      for (int round = 0; round < kRounds; ++round) {
        PiecewiseClient client(mux.port(), cut);
        REQUIRE(client.connected());
        REQUIRE(client.send(startup_message("plainuser", "app") + password_message("plain-secret") +
                            query_message("SELECT 'pipelined plain'")));
        WireMessage m;
        REQUIRE(client.read_message(m));
        CHECK((m.type == 'R' && auth_code(m) == 3));  // asked all the same, answered already
        CHECK(value_until_ready(client) == "");       // the login's ReadyForQuery
        CHECK(value_until_ready(client) == "pipelined plain");
      }
      still_serves_a_normal_client(mux);
    }
    SECTION(std::string("md5: the answer and a query together, ") + name_of(cut)) {
      Pgmux mux(TestPostgres::shared());
      INFO(mux.log_tail());
      for (int round = 0; round < kRounds; ++round) {
        PiecewiseClient client(mux.port(), cut);
        REQUIRE(client.connected());
        REQUIRE(client.send(startup_message("md5user", "app")));
        WireMessage m;
        REQUIRE(client.read_message(m));
        REQUIRE((m.type == 'R' && auth_code(m) == 5 && m.body.size() == 8));
        REQUIRE(client.send(password_message(md5_answer("md5user", "md5-secret", m.body.substr(4))) +
                            query_message("SELECT 'pipelined md5'")));
        CHECK(value_until_ready(client) == "");
        CHECK(value_until_ready(client) == "pipelined md5");
      }
      still_serves_a_normal_client(mux);
    }
    SECTION(std::string("SCRAM: the proof and a query together, ") + name_of(cut)) {
      Pgmux mux(TestPostgres::shared());
      INFO(mux.log_tail());
      for (int round = 0; round < kRounds; ++round) {
        PiecewiseClient client(mux.port(), cut);
        REQUIRE(client.connected());
        REQUIRE(client.send(startup_message("app", "app")));
        WireMessage m;
        REQUIRE(client.read_message(m));
        REQUIRE((m.type == 'R' && auth_code(m) == 10));
        auto scram = pgmux::auth::ScramClient::with_password(
            "app-secret", pgmux::auth::base64_encode(pgmux::auth::random_string(18)));
        const std::string first = scram.client_first({});
        REQUIRE(client.send(wire_message('p', std::string(pgmux::auth::kScramSha256) + '\0' +
                                                  be32(static_cast<std::uint32_t>(first.size())) + first)));
        REQUIRE(client.read_message(m));
        REQUIRE((m.type == 'R' && auth_code(m) == 11));
        auto proof = scram.on_server_first(m.body.substr(4));
        REQUIRE(proof);
        REQUIRE(client.send(wire_message('p', *proof) + query_message("SELECT 'pipelined scram'")));
        REQUIRE(client.read_message(m));
        CHECK((m.type == 'R' && auth_code(m) == 12 && scram.on_server_final(m.body.substr(4))));
        CHECK(value_until_ready(client) == "");
        CHECK(value_until_ready(client) == "pipelined scram");
      }
      still_serves_a_normal_client(mux);
    }
  }
}

TEST_CASE("malformed login messages cut in pieces get 08P01, and pgmux serves the next client",
          "[login][pieces]") {
  Pgmux mux(TestPostgres::shared());
  INFO(mux.log_tail());
  auto refused_with = [](PiecewiseClient& client, const std::string& bytes) {
    std::string received;
    REQUIRE(client.send(bytes));
    CHECK(client.read_until_closed(received));
    return error_response_sqlstate(received);
  };
  for (Cut cut : {Cut::inside_header, Cut::byte_per_write}) {
    INFO(name_of(cut));
    {
      PiecewiseClient client(mux.port(), cut);  // a startup packet's length under 8
      REQUIRE(client.connected());
      CHECK(refused_with(client, be32(7)) == "08P01");  // only the header: nothing sent after the refusal
    }
    {
      PiecewiseClient client(mux.port(), cut);  // a SASLInitialResponse's length under 4
      REQUIRE(client.connected());
      REQUIRE(client.send(startup_message("app", "app")));
      WireMessage m;
      REQUIRE(client.read_message(m));
      REQUIRE(m.type == 'R');
      CHECK(refused_with(client, "p" + be32(3)) == "08P01");
    }
  }
  for (Cut cut : {Cut::header_apart, Cut::body_in_two, Cut::first_body_byte_apart, Cut::byte_per_write}) {
    INFO(name_of(cut));
    PiecewiseClient client(mux.port(), cut);  // a mechanism pgmux did not offer
    REQUIRE(client.connected());
    REQUIRE(client.send(startup_message("app", "app")));
    WireMessage m;
    REQUIRE(client.read_message(m));
    REQUIRE(m.type == 'R');
    const std::string data = "n,,n=,r=abcdefghijklmnop";
    CHECK(refused_with(client, wire_message('p', std::string("SCRAM-SHA-1") + '\0' +
                                                     be32(static_cast<std::uint32_t>(data.size())) + data)) ==
          "08P01");
  }
  still_serves_a_normal_client(mux);
}

TEST_CASE("a login message bigger than a socket read, or cut short by the client's close, is handled",
          "[login][pieces]") {
  Pgmux mux(TestPostgres::shared());
  INFO(mux.log_tail());
  SECTION("a 65,000-byte SASLResponse arrives over several reads and is refused as a wrong proof: 28P01") {
    PiecewiseClient client(mux.port(), Cut::header_apart);
    REQUIRE(client.connected());
    REQUIRE(client.send(startup_message("app", "app")));
    WireMessage m;
    REQUIRE(client.read_message(m));
    REQUIRE((m.type == 'R' && auth_code(m) == 10));
    auto scram = pgmux::auth::ScramClient::with_password(
        "app-secret", pgmux::auth::base64_encode(pgmux::auth::random_string(18)));
    const std::string first = scram.client_first({});
    REQUIRE(client.send(wire_message('p', std::string(pgmux::auth::kScramSha256) + '\0' +
                                              be32(static_cast<std::uint32_t>(first.size())) + first)));
    REQUIRE(client.read_message(m));
    REQUIRE((m.type == 'R' && auth_code(m) == 11));
    std::string received;
    REQUIRE(client.send(wire_message('p', std::string(65000, 'x'))));
    CHECK(client.read_until_closed(received));
    CHECK(error_response_sqlstate(received) == "28P01");
  }
  SECTION("a startup packet whose client closes half-way through its body is dropped without a reply") {
    RawSocket raw(mux.port());
    REQUIRE(raw.connected());
    std::string packet = startup_message("app", "app");
    REQUIRE(raw.send_and_close_write(packet.substr(0, packet.size() / 2)));
    std::string received;
    CHECK(raw.read_until_closed(received, 10s));
    CHECK(received.empty());
  }
  SECTION("a SASLInitialResponse whose client closes half-way through its body is dropped without a reply") {
    RawSocket raw(mux.port());
    REQUIRE(raw.connected());
    REQUIRE(raw.send_all(startup_message("app", "app")));
    char type = 0;
    std::string body;
    REQUIRE(raw.read_message(type, body, 10s));
    REQUIRE(type == 'R');
    const std::string data = "n,,n=,r=abcdefghijklmnop";
    std::string message = wire_message('p', std::string(pgmux::auth::kScramSha256) + '\0' +
                                                be32(static_cast<std::uint32_t>(data.size())) + data);
    REQUIRE(raw.send_and_close_write(message.substr(0, message.size() - 5)));
    std::string received;
    CHECK(raw.read_until_closed(received, 10s));
    CHECK(received.empty());
  }
  still_serves_a_normal_client(mux);
}

namespace {

// Over TLS, each byte its own TLS record: pgmux's end of the TLS tunnel receives a write per record.
class RecordPerByte {
 public:
  explicit RecordPerByte(RawTlsClient& tls) : tls_(tls) {}
  bool send(const std::string& bytes) {
    for (char c : bytes)
      if (!tls_.send(std::string(1, c))) return false;
    return true;
  }
  bool read_message(WireMessage& m) { return tls_.read_message(m); }
  bool read_until_ready(std::vector<WireMessage>& messages) { return tls_.read_until_ready(messages); }

 private:
  RawTlsClient& tls_;
};

}  // namespace

TEST_CASE("a SCRAM login over TLS sent a TLS record per byte logs in, with and without channel binding",
          "[login][pieces][tls]") {
  static TestCerts certs;
  Pgmux mux(TestPostgres::shared(),
            {.extra_yaml = "tls:\n  cert_file: " + certs.server().cert +
                           "\n  key_file: " + certs.server().key + "\n  mode: allow\n"});
  INFO(mux.log_tail());
  for (bool direct : {true, false})
    for (bool plus : {true, false}) {
      INFO((direct ? "direct TLS" : "after SSLRequest")
           << (plus ? ", SCRAM-SHA-256-PLUS" : ", SCRAM-SHA-256"));
      RawTlsClient tls(mux.port(), {.direct = direct, .ca_file = certs.ca()});
      INFO(tls.failure());
      REQUIRE(tls.connected());
      RecordPerByte client(tls);
      REQUIRE(scram_login(client, "app", "app-secret", "app", plus ? tls.server_end_point() : "") == "");
      std::vector<WireMessage> messages;
      REQUIRE(client.send(query_message("SELECT 'tls in pieces'")));
      REQUIRE(tls.read_until_ready(messages));
      CHECK(data_rows(messages) == std::vector<std::string>{"tls in pieces"});
    }
  still_serves_a_normal_client(mux);
}

namespace {

// SCRAM with the SASLInitialResponse pipelined right behind the startup packet (a client that knows the
// mechanism it will be offered), the proof sent when asked: "" on login, else the SQLSTATE or what went
// wrong.
std::string scram_with_pipelined_initial_response(int port, Cut cut) {
  PiecewiseClient client(port, cut);
  if (!client.connected()) return "not connected";
  auto scram = pgmux::auth::ScramClient::with_password(
      "app-secret", pgmux::auth::base64_encode(pgmux::auth::random_string(18)));
  const std::string first = scram.client_first({});
  if (!client.send(startup_message("app", "app") +
                   wire_message('p', std::string(pgmux::auth::kScramSha256) + '\0' +
                                         be32(static_cast<std::uint32_t>(first.size())) + first)))
    return "not sent";
  WireMessage m;
  if (!client.read_message(m)) return "no answer to the startup packet";
  if (m.type == 'E') return "E" + error_field(m.body, 'C');
  if (m.type != 'R' || auth_code(m) != 10) return "expected AuthenticationSASL";
  if (!client.read_message(m)) return "no answer to the SASLInitialResponse";
  if (m.type == 'E') return "E" + error_field(m.body, 'C');
  if (m.type != 'R' || auth_code(m) != 11) return "expected AuthenticationSASLContinue";
  auto proof = scram.on_server_first(m.body.substr(4));
  if (!proof) return "bad server-first-message";
  if (!client.send(wire_message('p', *proof))) return "proof not sent";
  if (!client.read_message(m)) return "no answer to the proof";
  if (m.type == 'E') return "E" + error_field(m.body, 'C');
  if (m.type != 'R' || auth_code(m) != 12 || !scram.on_server_final(m.body.substr(4))) return "bad SASLFinal";
  std::string after = value_until_ready(client);
  if (!after.empty()) return after;
  return query_value(client, "SELECT 'pipelined initial response'") == "pipelined initial response"
             ? ""
             : "query failed";
}

}  // namespace

// pgmux takes a password sent before it was asked (Neon's pipelineConnect) by the 'p' after the startup
// packet; a SASLInitialResponse is a 'p' too, told apart by the mechanism's name. Only the whole write is
// asserted against pgmux: with a byte per write, how much of the name is there when pgmux looks depends on
// timing (a name not there whole is taken for a password, as before).
TEST_CASE("a SASLInitialResponse pipelined behind the startup packet logs in, as it does with Postgres",
          "[login][pieces]") {
  TestPostgres& postgres = TestPostgres::shared();
  for (Cut cut : {Cut::whole, Cut::byte_per_write}) {
    INFO(name_of(cut));
    CHECK(scram_with_pipelined_initial_response(postgres.port(), cut) == "");  // Postgres itself
  }
  Pgmux mux(postgres);
  INFO(mux.log_tail());
  CHECK(scram_with_pipelined_initial_response(mux.port(), Cut::whole) == "");
  still_serves_a_normal_client(mux);
}
