// libFuzzer harness: what a client sends before it is logged in (startup packet, options, then a SCRAM or md5
// exchange with pgmux as the server), in the order pgmux reads it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "pgmux/auth/md5.hpp"
#include "pgmux/auth/scram.hpp"
#include "pgmux/auth/secrets.hpp"
#include "pgmux/protocol/startup.hpp"

namespace {

using namespace pgmux;

// The messages in one input, separated by a NUL byte (SCRAM payloads and startup packets are split there).
struct Messages {
  std::string_view rest;
  std::string_view next() {
    const std::size_t end = rest.find('\0');
    const std::string_view out = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    return out;
  }
};

const auth::UserSecret& known_user() {
  // One iteration: the harness exercises parsing, not PBKDF2.
  static const auth::UserSecret secret = [] {
    auth::UserSecret s;
    s.kind = auth::UserSecret::Kind::scram;
    s.verifier = auth::scram_verifier_from_password("secret", "saltsalt", 1);
    s.text = auth::format_scram_verifier(s.verifier);
    return s;
  }();
  return secret;
}

void scram_exchange(std::string_view first, std::string_view final, bool known) {
  std::optional<auth::ScramVerifier> verifier;
  if (known) verifier = known_user().verifier;
  auth::ScramServer server(verifier, "app", "mock secret", "c2VydmVybm9uY2U=");
  if (!server.on_client_first(first)) return;
  if (server.on_client_final(final)) {
    if (!known) std::abort();  // an unknown user never logs in
  }
  // A message after the end is refused, never answered.
  if (server.on_client_final(final)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t mode = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (mode % 3) {
    case 0: {  // the startup packet after its length, as pgmux reads it off the socket
      std::string error;
      const auto packet = protocol::parse_startup_packet(input, error);
      if (!packet) {
        if (error.empty()) std::abort();
        return 0;
      }
      if (const std::string* options = packet->param("options"))
        (void)protocol::parse_startup_options(*options);
      (void)packet->param("user");
      return 0;
    }
    case 1: {  // SASL payloads: client-first-message, client-final-message
      Messages messages{input};
      const std::string_view first = messages.next();
      const std::string_view final = messages.next();
      scram_exchange(first, final, mode & 0x80);
      return 0;
    }
    default: {  // a PasswordMessage answering md5, against each kind of stored secret that can check it
      static const auth::UserSecret plain = *auth::parse_user_secret("app", "secret");
      static const auth::UserSecret hashed =
          *auth::parse_user_secret("app", auth::md5_stored_hash("app", "secret"));
      const auth::Md5Salt salt{1, 2, 3, 4};
      if (auth::md5_verify("app", plain, salt, input) != auth::md5_verify("app", hashed, salt, input))
        std::abort();
      return 0;
    }
  }
}
