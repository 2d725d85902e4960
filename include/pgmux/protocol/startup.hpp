// Parses the packets a client sends before authentication: StartupMessage, SSLRequest, CancelRequest.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgmux::protocol {

struct StartupPacket {
  enum class Kind { startup, ssl_request, gssenc_request, cancel_request };
  Kind kind = Kind::startup;
  std::uint32_t version = 0;                                // for startup: major << 16 | minor
  std::vector<std::pair<std::string, std::string>> params;  // for startup, in the client's order
  std::uint32_t cancel_pid = 0, cancel_key = 0;             // for cancel_request

  const std::string* param(std::string_view name) const;
};

// The settings in a startup `options` value ("-c name=value", "-cname=value" or "--name=value", separated by
// spaces, a backslash escaping the next character), as Postgres reads them. Other switches are skipped.
std::vector<std::pair<std::string, std::string>> parse_startup_options(std::string_view options);

// `packet` is the whole packet after the 4-byte length: the code, then the body.
// nullopt with `error` set when malformed (missing terminator, odd key/value list, unknown code).
std::optional<StartupPacket> parse_startup_packet(std::string_view packet, std::string& error);

}  // namespace pgmux::protocol
