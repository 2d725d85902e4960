// Parsing, classifying and formatting configured password secrets (plain, md5, SCRAM-SHA-256 verifiers).
#include "pgmux/auth/secrets.hpp"

#include <charconv>
#include <string>

#include "pgmux/auth/crypto.hpp"

namespace pgmux::auth {
namespace {

constexpr std::string_view kScramPrefix = "SCRAM-SHA-256$";
constexpr int kPlainIterations = 4096;  // Postgres's default scram_iterations

std::optional<Key256> decode_key(std::string_view b64) {
  auto raw = base64_decode(b64);
  if (!raw || raw->size() != Key256{}.size()) return std::nullopt;
  Key256 key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>((*raw)[i]);
  return key;
}

// Postgres's own md5 shape check (pg_authid): "md5" followed by exactly 32 lowercase hex digits.
bool is_md5_hash(std::string_view text) {
  if (text.size() != 35 || !text.starts_with("md5")) return false;
  for (char c : text.substr(3)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

std::optional<ScramVerifier> parse_scram_verifier(std::string_view text) {
  if (!text.starts_with(kScramPrefix)) return std::nullopt;
  text.remove_prefix(kScramPrefix.size());

  // "<iterations>:<salt>$<StoredKey>:<ServerKey>"; base64 never contains ':' or '$', so plain splits suffice.
  const auto dollar = text.find('$');
  if (dollar == std::string_view::npos) return std::nullopt;
  const std::string_view params = text.substr(0, dollar);
  const std::string_view keys = text.substr(dollar + 1);
  const auto colon1 = params.find(':');
  const auto colon2 = keys.find(':');
  if (colon1 == std::string_view::npos || colon2 == std::string_view::npos) return std::nullopt;

  ScramVerifier v;
  const std::string_view iter_text = params.substr(0, colon1);
  const auto [end, ec] = std::from_chars(iter_text.data(), iter_text.data() + iter_text.size(), v.iterations);
  if (iter_text.empty() || ec != std::errc{} || end != iter_text.data() + iter_text.size() ||
      v.iterations < 1)
    return std::nullopt;

  auto salt = base64_decode(params.substr(colon1 + 1));
  if (!salt || salt->empty()) return std::nullopt;
  v.salt = std::move(*salt);

  auto stored = decode_key(keys.substr(0, colon2));
  auto server = decode_key(keys.substr(colon2 + 1));  // a further '$' or ':' makes this fail to decode
  if (!stored || !server) return std::nullopt;
  v.stored_key = *stored;
  v.server_key = *server;
  return v;
}

std::optional<UserSecret> parse_user_secret(std::string_view user, std::string_view text) {
  UserSecret secret;
  secret.text = std::string(text);
  if (text.starts_with(kScramPrefix)) {
    auto v = parse_scram_verifier(text);
    if (!v) return std::nullopt;
    secret.kind = UserSecret::Kind::scram;
    secret.verifier = std::move(*v);
    return secret;
  }
  if (is_md5_hash(text)) {
    // An md5 hash cannot yield a SCRAM verifier, so `verifier` stays empty (iterations == 0).
    secret.kind = UserSecret::Kind::md5;
    return secret;
  }
  // Anything else, including "md5..." of another shape, is a plain password, as in Postgres. The salt is
  // derived from the user so a config reload yields the same verifier and cached client keys stay valid.
  secret.kind = UserSecret::Kind::plain;
  const Key256 salt = sha256("pgmux-salt:" + std::string(user));
  secret.verifier = scram_verifier_from_password(text, as_view(salt).substr(0, 16), kPlainIterations);
  return secret;
}

ScramVerifier scram_verifier_from_password(std::string_view password, std::string_view salt, int iterations) {
  const Key256 salted = pbkdf2_sha256(password, salt, iterations);
  ScramVerifier v;
  v.iterations = iterations;
  v.salt = std::string(salt);
  v.stored_key = sha256(as_view(hmac_sha256(as_view(salted), "Client Key")));
  v.server_key = hmac_sha256(as_view(salted), "Server Key");
  return v;
}

ScramVerifier new_scram_verifier(std::string_view password, int iterations) {
  return scram_verifier_from_password(password, random_string(16), iterations);
}

std::string format_scram_verifier(const ScramVerifier& v) {
  return std::string(kScramPrefix) + std::to_string(v.iterations) + ":" + base64_encode(v.salt) + "$" +
         base64_encode(as_view(v.stored_key)) + ":" + base64_encode(as_view(v.server_key));
}

}  // namespace pgmux::auth
