// Password secrets as stored in the config: plain text, an md5 hash or a SCRAM-SHA-256 verifier.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgmux::auth {

using Key256 = std::array<std::uint8_t, 32>;

// The parts of "SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>" (RFC 5803, as Postgres
// stores them in pg_authid.rolpassword).
struct ScramVerifier {
  int iterations = 0;
  std::string salt;  // raw bytes, not base64
  Key256 stored_key{};
  Key256 server_key{};
};

struct UserSecret {
  enum class Kind { plain, md5, scram };
  Kind kind = Kind::plain;
  std::string text;        // plain: the password; md5: "md5" + 32 hex digits; scram: the verifier string
  ScramVerifier verifier;  // filled for scram, and derived for plain (so SCRAM works against plain secrets)
};

// nullopt when the text looks like a verifier ("SCRAM-SHA-256$") but is malformed.
std::optional<ScramVerifier> parse_scram_verifier(std::string_view text);

// Classifies a configured secret. A plain password also gets a verifier derived with a salt made from
// `user` (deterministic, so reloading the config does not change it) and 4096 iterations.
// nullopt: a malformed "SCRAM-SHA-256$..." ("md5" text of another shape is a plain password, as in Postgres).
std::optional<UserSecret> parse_user_secret(std::string_view user, std::string_view text);

// Derives a verifier from a password (SaltedPassword = PBKDF2-HMAC-SHA-256, RFC 5802). Passwords are used as
// bytes; Postgres would SASLprep non-ASCII passwords first (TODO: SASLprep).
ScramVerifier scram_verifier_from_password(std::string_view password, std::string_view salt, int iterations);

// A new verifier for `password` with a random 16-byte salt, as Postgres makes them (pgmux --hash-password).
ScramVerifier new_scram_verifier(std::string_view password, int iterations);

// "SCRAM-SHA-256$4096:...$...:..." formatting of a verifier.
std::string format_scram_verifier(const ScramVerifier& v);

}  // namespace pgmux::auth
