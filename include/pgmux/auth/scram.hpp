// SCRAM-SHA-256 (RFC 5802, RFC 7677) as Postgres speaks it, both sides, as pure state machines.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "pgmux/auth/secrets.hpp"

namespace pgmux::auth {

// Channel binding (RFC 5929 tls-server-end-point) as the connection and the client's choice of mechanism set
// it. Over TLS pgmux offers SCRAM-SHA-256-PLUS and SCRAM-SHA-256; without TLS only the latter.
struct ScramChannelBinding {
  bool offered = false;   // the connection is TLS, so SCRAM-SHA-256-PLUS was offered
  bool selected = false;  // the client chose SCRAM-SHA-256-PLUS
  std::string end_point;  // the hash of pgmux's certificate: what the client must echo in c=
};

inline constexpr std::string_view kScramSha256 = "SCRAM-SHA-256";
inline constexpr std::string_view kScramSha256Plus = "SCRAM-SHA-256-PLUS";

// pgmux as the server, authenticating a client. Messages are the SASL payloads only (the bytes inside
// SASLInitialResponse / SASLResponse and AuthenticationSASLContinue / SASLFinal), never the wire framing.
class ScramServer {
 public:
  // `verifier` nullopt: the user is unknown. The exchange then runs to the end with a salt derived from
  // `user` and `mock_secret` (so that probing reveals nothing) and always fails at the proof.
  // `server_nonce` is the random part pgmux appends to the client's nonce (printable, no ',').
  ScramServer(std::optional<ScramVerifier> verifier, std::string_view user, std::string_view mock_secret,
              std::string server_nonce, ScramChannelBinding binding = {});

  // client-first-message ("n,,n=user,r=nonce", or "p=tls-server-end-point,,..." with SCRAM-SHA-256-PLUS);
  // returns server-first-message or nullopt on malformed input or a gs2 header that does not match the
  // mechanism and what was offered: 'p' without PLUS chosen, 'n' with it, or 'y' (the client can bind but
  // believes we cannot) where PLUS was offered, which means someone removed it from the offer.
  std::optional<std::string> on_client_first(std::string_view message);

  // Whether the last on_client_first failed on channel binding negotiation rather than on syntax.
  bool binding_refused() const { return binding_refused_; }

  // client-final-message ("c=biws,r=...,p=..."); returns server-final-message ("v=...") when the proof is
  // right, nullopt otherwise (malformed, c= not the gs2 header plus our end-point hash, wrong nonce, wrong
  // proof, unknown user).
  std::optional<std::string> on_client_final(std::string_view message);

  // After a successful on_client_final: ClientKey = ClientProof XOR ClientSignature. With it pgmux can log in
  // to Postgres as this user when Postgres holds the same verifier (PgBouncer's SCRAM pass-through).
  const Key256& client_key() const { return client_key_; }

  // Why the last call returned nullopt, for the log (never sent to the client).
  const std::string& error() const { return error_; }

 private:
  std::optional<ScramVerifier> verifier_;
  ScramVerifier effective_;  // the real verifier or the mock one
  std::string server_nonce_;
  ScramChannelBinding binding_;
  std::string expected_cbind_;  // base64 of the client's gs2 header (and, with 'p', our end-point hash)
  bool binding_refused_ = false;
  std::string client_first_bare_;
  std::string server_first_;
  std::string combined_nonce_;
  Key256 client_key_{};
  std::string error_;
  int step_ = 0;
};

// pgmux as the client, logging in to Postgres.
class ScramClient {
 public:
  // With the password: the salt and iteration count come from the server.
  static ScramClient with_password(std::string password, std::string client_nonce);
  // With ClientKey and ServerKey recovered from a client's login against the same verifier: no PBKDF2 needed.
  static ScramClient with_keys(const Key256& client_key, const Key256& server_key, std::string client_nonce);

  // The client-first-message, "n,,n=,r=<nonce>" (Postgres ignores the user name here). With the server's
  // tls-server-end-point hash (RFC 5929), "p=tls-server-end-point,,n=,r=<nonce>" for SCRAM-SHA-256-PLUS, and
  // the hash goes into the client-final-message's c=.
  std::string client_first(std::string_view tls_end_point = {});
  // server-first-message -> client-final-message; nullopt if malformed or the nonce does not extend ours.
  std::optional<std::string> on_server_first(std::string_view message);
  // server-final-message: true only if the server signature verifies ("e=..." or a bad signature: false).
  bool on_server_final(std::string_view message);

  const std::string& error() const { return error_; }

 private:
  ScramClient() = default;
  std::optional<std::string> password_;
  Key256 client_key_{};
  Key256 server_key_{};
  std::string client_nonce_;
  std::string client_first_bare_;
  std::string channel_binding_;  // c='s content before base64: the gs2 header, then any end-point hash
  std::string auth_message_;
  std::string error_;
};

// The unknown user's verifier: a salt stable per user name and `mock_secret` (so repeated probes see the same
// salt, as for a real user), Postgres's default 4096 rounds, and random keys that no password or proof
// matches.
ScramVerifier mock_verifier(std::string_view user, std::string_view mock_secret);

}  // namespace pgmux::auth
