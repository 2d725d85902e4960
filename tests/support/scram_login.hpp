// A SCRAM-SHA-256 login by hand, over any test client that sends bytes and reads whole messages.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "pgmux/auth/crypto.hpp"
#include "pgmux/auth/scram.hpp"
#include "raw_socket.hpp"
#include "websocket_client.hpp"

namespace pgmux::test {

// Logs in with SCRAM-SHA-256 (waiting for each server message), to ReadyForQuery; with `tls_end_point` (the
// SHA-256 of the server's certificate) with SCRAM-SHA-256-PLUS, which the server must then offer. "" on
// success, else what went wrong (the SQLSTATE of an ErrorResponse, or a description). `Client` has
// send(bytes), read_message(WireMessage&) and read_until_ready(std::vector<WireMessage>&).
template <typename Client>
std::string scram_login(Client& client, const std::string& user, const std::string& password,
                        const std::string& database, std::string_view tls_end_point = {}) {
  if (!client.send(startup_message(user, database))) return "startup not sent";
  WireMessage m;
  auto auth_code = [&] {
    std::uint32_t code = 0;
    if (m.body.size() >= 4) std::memcpy(&code, m.body.data(), 4);
    return ntohl(code);
  };
  if (!client.read_message(m)) return "no answer to the startup message";
  if (m.type == 'E') return error_field(m.body, 'C');
  if (m.type != 'R' || auth_code() != 10) return "expected AuthenticationSASL";
  const std::string_view mechanism = tls_end_point.empty() ? auth::kScramSha256 : auth::kScramSha256Plus;
  // The offer is a list of names, each ending in '\0'.
  if (m.body.find(std::string(mechanism) + '\0', 4) == std::string::npos)
    return std::string(mechanism) + " not offered";
  auto scram = auth::ScramClient::with_password(password, auth::base64_encode(auth::random_string(18)));
  const std::string first = scram.client_first(tls_end_point);
  if (!client.send(wire_message(
          'p', std::string(mechanism) + '\0' + be32(static_cast<std::uint32_t>(first.size())) + first)))
    return "SASLInitialResponse not sent";
  if (!client.read_message(m)) return "no answer to the SASLInitialResponse";
  if (m.type == 'E') return error_field(m.body, 'C');
  if (m.type != 'R' || auth_code() != 11) return "expected SASLContinue";
  auto final_message = scram.on_server_first(m.body.substr(4));
  if (!final_message) return "bad server-first-message: " + scram.error();
  if (!client.send(wire_message('p', *final_message))) return "SASLResponse not sent";
  if (!client.read_message(m)) return "no answer to the proof";
  if (m.type == 'E') return error_field(m.body, 'C');
  if (m.type != 'R' || auth_code() != 12 || !scram.on_server_final(m.body.substr(4))) return "bad SASLFinal";
  std::vector<WireMessage> rest;
  if (!client.read_until_ready(rest)) return "no ReadyForQuery after login";
  for (const auto& r : rest)
    if (r.type == 'E') return error_field(r.body, 'C');
  return "";
}

}  // namespace pgmux::test
