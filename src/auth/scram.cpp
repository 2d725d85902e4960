// SCRAM-SHA-256 (RFC 5802/7677) server and client state machines over SASL payloads, as Postgres speaks it.
#include "pgmux/auth/scram.hpp"

#include <charconv>
#include <vector>

#include "pgmux/auth/crypto.hpp"

namespace pgmux::auth {
namespace {

// ScramServer::step_ values. The c= of the client-final-message must echo the gs2 header the client sent
// (and its channel binding data): expected_cbind_ keeps what it must be.
constexpr int kExpectFirst = 0;
constexpr int kExpectFinal = 1;
constexpr int kDone = 3;
constexpr int kFailed = 4;

constexpr std::string_view kEndPointBinding = "tls-server-end-point";

constexpr int kMockIterations = 4096;
constexpr std::size_t kMockSaltSize = 16;

// SCRAM attribute values never contain ',', so a message is a plain comma-separated list of "x=value".
std::vector<std::string_view> split(std::string_view message) {
  std::vector<std::string_view> parts;
  for (;;) {
    const auto comma = message.find(',');
    parts.push_back(message.substr(0, comma));
    if (comma == std::string_view::npos) return parts;
    message.remove_prefix(comma + 1);
  }
}

// The value of attribute `name` if `part` is "<name>=value".
std::optional<std::string_view> attr(std::string_view part, char name) {
  if (part.size() < 2 || part[0] != name || part[1] != '=') return std::nullopt;
  return part.substr(2);
}

// Optional extensions (RFC 5802 "extensions"): any "x=value" with x a letter; we ignore them.
bool is_extension(std::string_view part) {
  return part.size() >= 2 && ((part[0] >= 'a' && part[0] <= 'z') || (part[0] >= 'A' && part[0] <= 'Z')) &&
         part[1] == '=';
}

// RFC 5802 "printable": %x21-2B / %x2D-7E, i.e. visible ASCII without ','.
bool is_valid_nonce(std::string_view nonce) {
  if (nonce.empty()) return false;
  for (char c : nonce) {
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  }
  return true;
}

std::optional<Key256> to_key(std::string_view bytes) {
  Key256 key{};
  if (bytes.size() != key.size()) return std::nullopt;
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(bytes[i]);
  return key;
}

Key256 xor_keys(const Key256& a, const Key256& b) {
  Key256 out{};
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = a[i] ^ b[i];
  return out;
}

}  // namespace

ScramVerifier mock_verifier(std::string_view user, std::string_view mock_secret) {
  ScramVerifier v;
  v.iterations = kMockIterations;
  v.salt = std::string(as_view(hmac_sha256(mock_secret, user)).substr(0, kMockSaltSize));
  random_bytes(v.stored_key);
  random_bytes(v.server_key);
  return v;
}

ScramServer::ScramServer(std::optional<ScramVerifier> verifier, std::string_view user,
                         std::string_view mock_secret, std::string server_nonce, ScramChannelBinding binding)
    : verifier_(std::move(verifier)),
      effective_(verifier_ ? *verifier_ : mock_verifier(user, mock_secret)),
      server_nonce_(std::move(server_nonce)),
      binding_(std::move(binding)) {}

std::optional<std::string> ScramServer::on_client_first(std::string_view message) {
  auto fail = [this](std::string why) -> std::optional<std::string> {
    error_ = std::move(why);
    step_ = kFailed;
    return std::nullopt;
  };
  if (step_ != kExpectFirst) return fail("client-first-message out of order");

  // gs2-header: cbind-flag "," [authzid] ",", where cbind-flag is "n", "y" or "p=" cb-name. The checks
  // are Postgres's (auth-scram.c, read_client_first_message).
  auto refuse_binding = [&](std::string why) {
    binding_refused_ = true;
    return fail(std::move(why));
  };
  const std::string_view whole = message;
  std::string_view cbind_name;
  if (message.starts_with("p=")) {
    const auto comma = message.find(',');
    if (comma == std::string_view::npos) return fail("malformed gs2 header in client-first-message");
    cbind_name = message.substr(2, comma - 2);
    if (!binding_.selected)
      return refuse_binding(
          "the client chose SCRAM-SHA-256 without channel binding, yet its message asks for it");
    if (cbind_name != kEndPointBinding)
      return refuse_binding("unsupported channel binding type \"" + std::string(cbind_name) + "\"");
    if (binding_.end_point.empty()) return refuse_binding("no channel binding data for this certificate");
    message.remove_prefix(comma + 1);
  } else {
    if (message.size() < 3 || (message[0] != 'n' && message[0] != 'y') || message[1] != ',')
      return fail("malformed gs2 header in client-first-message");
    if (binding_.selected)
      return refuse_binding(
          "the client chose SCRAM-SHA-256-PLUS, yet its message asks for no channel binding");
    // 'y': the client could bind but believes the server cannot. Over TLS the server offered PLUS, so
    // someone in the middle removed it from the list: a downgrade.
    if (message[0] == 'y' && binding_.offered)
      return refuse_binding(
          "channel binding negotiation error: the client supports channel binding and "
          "thinks the server does not, but this server offered it");
    message.remove_prefix(2);
  }
  if (message.starts_with("a=")) return fail("authorization identity is not supported");  // as Postgres
  if (message.empty() || message[0] != ',') return fail("malformed gs2 header in client-first-message");
  message.remove_prefix(1);
  std::string gs2_header(whole.substr(0, whole.size() - message.size()));
  if (!cbind_name.empty()) gs2_header += binding_.end_point;

  // client-first-message-bare: [reserved-mext ","] username "," nonce ["," extensions].
  const auto parts = split(message);
  if (parts.size() < 2) return fail("client-first-message lacks a user name or nonce");
  if (attr(parts[0], 'm')) return fail("client requires an unsupported SCRAM extension");
  // The user name is ignored: Postgres takes it from the startup packet (libpq sends "n=").
  if (!attr(parts[0], 'n')) return fail("client-first-message lacks n=");
  const auto nonce = attr(parts[1], 'r');
  if (!nonce || !is_valid_nonce(*nonce)) return fail("client-first-message has a missing or invalid nonce");
  for (std::size_t i = 2; i < parts.size(); ++i) {
    if (!is_extension(parts[i])) return fail("malformed extension in client-first-message");
  }
  if (!is_valid_nonce(server_nonce_)) return fail("server nonce is empty or not printable");

  client_first_bare_ = std::string(message);
  combined_nonce_ = std::string(*nonce) + server_nonce_;
  server_first_ = "r=" + combined_nonce_ + ",s=" + base64_encode(effective_.salt) +
                  ",i=" + std::to_string(effective_.iterations);
  expected_cbind_ = base64_encode(gs2_header);
  step_ = kExpectFinal;
  return server_first_;
}

std::optional<std::string> ScramServer::on_client_final(std::string_view message) {
  auto fail = [this](std::string why) -> std::optional<std::string> {
    error_ = std::move(why);
    step_ = kFailed;
    return std::nullopt;
  };
  if (step_ != kExpectFinal) return fail("client-final-message out of order");

  // client-final-message: "c=" cbind "," "r=" nonce ["," extensions] "," "p=" proof.
  const auto parts = split(message);
  if (parts.size() < 3) return fail("client-final-message lacks fields");
  const auto cbind = attr(parts[0], 'c');
  // c= is base64 of the gs2 header and, with channel binding, our end-point hash: "biws" for "n,,", "eSws"
  // for "y,,". A client that saw another certificate (a man in the middle's) sends another hash.
  if (!cbind || !constant_time_equal(*cbind, expected_cbind_))
    return fail("channel binding data does not match the gs2 header and this connection's certificate");
  const auto nonce = attr(parts[1], 'r');
  if (!nonce || *nonce != combined_nonce_) return fail("nonce in client-final-message does not match");
  for (std::size_t i = 2; i + 1 < parts.size(); ++i) {
    if (!is_extension(parts[i])) return fail("malformed extension in client-final-message");
  }
  const auto proof_b64 = attr(parts.back(), 'p');
  if (!proof_b64) return fail("client-final-message lacks p=");
  const auto proof_raw = base64_decode(*proof_b64);
  const auto proof = proof_raw ? to_key(*proof_raw) : std::nullopt;
  if (!proof) return fail("client proof is not 32 bytes of base64");

  // Everything before ",p=" is client-final-message-without-proof.
  const std::string_view without_proof = message.substr(0, message.size() - parts.back().size() - 1);
  const std::string auth_message =
      client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);
  const Key256 client_signature = hmac_sha256(as_view(effective_.stored_key), auth_message);
  const Key256 client_key = xor_keys(*proof, client_signature);
  const bool proof_ok =
      constant_time_equal(as_view(sha256(as_view(client_key))), as_view(effective_.stored_key));
  // The unknown user is checked only after the same work as a real check, so timing does not tell them apart.
  if (!verifier_) return fail("unknown user");
  if (!proof_ok) return fail("wrong password: client proof does not verify");

  client_key_ = client_key;
  step_ = kDone;
  return "v=" + base64_encode(as_view(hmac_sha256(as_view(effective_.server_key), auth_message)));
}

ScramClient ScramClient::with_password(std::string password, std::string client_nonce) {
  ScramClient c;
  c.password_ = std::move(password);
  c.client_nonce_ = std::move(client_nonce);
  return c;
}

ScramClient ScramClient::with_keys(const Key256& client_key, const Key256& server_key,
                                   std::string client_nonce) {
  ScramClient c;
  c.client_key_ = client_key;
  c.server_key_ = server_key;
  c.client_nonce_ = std::move(client_nonce);
  return c;
}

std::string ScramClient::client_first(std::string_view tls_end_point) {
  client_first_bare_ = "n=,r=" + client_nonce_;
  auth_message_.clear();
  const std::string gs2_header = tls_end_point.empty() ? "n,," : "p=tls-server-end-point,,";
  channel_binding_ = gs2_header + std::string(tls_end_point);
  return gs2_header + client_first_bare_;
}

std::optional<std::string> ScramClient::on_server_first(std::string_view message) {
  auto fail = [this](std::string why) -> std::optional<std::string> {
    error_ = std::move(why);
    return std::nullopt;
  };
  if (client_first_bare_.empty() || !auth_message_.empty()) return fail("server-first-message out of order");

  // server-first-message: [reserved-mext ","] "r=" nonce "," "s=" salt "," "i=" iterations ["," extensions].
  const auto parts = split(message);
  if (parts.size() < 3) return fail("server-first-message lacks fields");
  if (attr(parts[0], 'm')) return fail("server requires an unsupported SCRAM extension");
  const auto nonce = attr(parts[0], 'r');
  // The server must extend our nonce with its own part; an echo alone would let it replay old exchanges.
  if (!nonce || !is_valid_nonce(*nonce) || nonce->size() <= client_nonce_.size() ||
      !nonce->starts_with(client_nonce_))
    return fail("server nonce does not extend the client nonce");
  const auto salt_b64 = attr(parts[1], 's');
  const auto salt = salt_b64 ? base64_decode(*salt_b64) : std::nullopt;
  if (!salt || salt->empty()) return fail("server-first-message has a missing or invalid salt");
  const auto iter_text = attr(parts[2], 'i');
  int iterations = 0;
  if (!iter_text || iter_text->empty()) return fail("server-first-message lacks i=");
  const auto [end, ec] =
      std::from_chars(iter_text->data(), iter_text->data() + iter_text->size(), iterations);
  if (ec != std::errc{} || end != iter_text->data() + iter_text->size() || iterations < 1)
    return fail("server-first-message has an invalid iteration count");
  for (std::size_t i = 3; i < parts.size(); ++i) {
    if (!is_extension(parts[i])) return fail("malformed extension in server-first-message");
  }

  if (password_) {
    const Key256 salted = pbkdf2_sha256(*password_, *salt, iterations);
    client_key_ = hmac_sha256(as_view(salted), "Client Key");
    server_key_ = hmac_sha256(as_view(salted), "Server Key");
  }
  // c= carries the gs2 header (for "n,," that is "biws") and, with SCRAM-SHA-256-PLUS, the certificate hash.
  const std::string without_proof = "c=" + base64_encode(channel_binding_) + ",r=" + std::string(*nonce);
  auth_message_ = client_first_bare_ + "," + std::string(message) + "," + without_proof;
  const Key256 stored_key = sha256(as_view(client_key_));
  const Key256 proof = xor_keys(client_key_, hmac_sha256(as_view(stored_key), auth_message_));
  return without_proof + ",p=" + base64_encode(as_view(proof));
}

bool ScramClient::on_server_final(std::string_view message) {
  if (auth_message_.empty()) {
    error_ = "server-final-message out of order";
    return false;
  }
  // server-final-message: ("e=" server-error | "v=" verifier) ["," extensions].
  const auto parts = split(message);
  if (const auto err = attr(parts[0], 'e')) {
    error_ = "server reported error: " + std::string(*err);
    return false;
  }
  const auto sig_b64 = attr(parts[0], 'v');
  const auto sig = sig_b64 ? base64_decode(*sig_b64) : std::nullopt;
  if (!sig) {
    error_ = "malformed server-final-message";
    return false;
  }
  const Key256 expected = hmac_sha256(as_view(server_key_), auth_message_);
  if (!constant_time_equal(*sig, as_view(expected))) {
    error_ = "server signature does not verify";
    return false;
  }
  return true;
}

}  // namespace pgmux::auth
