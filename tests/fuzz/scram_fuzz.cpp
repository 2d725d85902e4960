// libFuzzer harness: the SCRAM texts pgmux parses from others: a stored verifier from the config, and the
// server's messages when pgmux logs in to Postgres.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "pgmux/auth/scram.hpp"
#include "pgmux/auth/secrets.hpp"

namespace {

using namespace pgmux::auth;

void verifier_text(std::string_view text) {
  const auto verifier = parse_scram_verifier(text);
  if (!verifier) return;
  // What parses must print back to a text that parses to the same verifier.
  const auto again = parse_scram_verifier(format_scram_verifier(*verifier));
  if (!again || again->iterations != verifier->iterations || again->salt != verifier->salt ||
      again->stored_key != verifier->stored_key || again->server_key != verifier->server_key)
    std::abort();
  // A verifier in the config is taken as one (parse_user_secret derives one from any other text: PBKDF2,
  // slow).
  const auto secret = parse_user_secret("app", text);
  if (!secret || secret->kind != UserSecret::Kind::scram) std::abort();
}

void server_messages(std::string_view first, std::string_view final) {
  // With keys, as pgmux logs in with a client's recovered ClientKey: no PBKDF2 at the server's iteration
  // count.
  const Key256 client_key{1}, server_key{2};
  ScramClient client = ScramClient::with_keys(client_key, server_key, "Y2xpZW50bm9uY2U=");
  const std::string client_first = client.client_first();
  if (!client.on_server_first(first)) {
    if (client.error().empty()) std::abort();
    return;
  }
  (void)client.on_server_final(final);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    verifier_text(input);
    return 0;
  }
  // server-first-message, NUL, server-final-message.
  const std::size_t split = input.find('\0');
  const std::string_view first = input.substr(0, split);
  const std::string_view final =
      split == std::string_view::npos ? std::string_view() : input.substr(split + 1);
  server_messages(first, final);
  return 0;
}
