// How a login for a user pgmux does not know is handled: exactly like one for a user it does know, up to the
// failed proof, so that neither the method, the messages nor the work done tell the two apart.
#include "session/unknown_user.hpp"

#include "pgmux/auth/crypto.hpp"
#include "pgmux/auth/md5.hpp"
#include "pgmux/auth/scram.hpp"

namespace pgmux::session {

using Kind = auth::UserSecret::Kind;

SecretKinds count_secret_kinds(const std::map<std::string, auth::UserSecret>& secrets) {
  SecretKinds kinds;
  for (const auto& [name, secret] : secrets) {
    if (secret.kind == Kind::plain) ++kinds.plain;
    if (secret.kind == Kind::md5) ++kinds.md5;
    if (secret.kind == Kind::scram) ++kinds.scram;
  }
  return kinds;
}

bool challenge_with_md5(config::AuthType auth_type, const auth::UserSecret* secret,
                        const SecretKinds& listed) {
  const bool md5_asked = auth_type == config::AuthType::md5;
  if (secret) {
    // md5 needs the password or its md5 hash: a user with only a SCRAM verifier gets SCRAM (as PgBouncer
    // does), and a user stored as an md5 hash gets md5 whatever auth_type says, as a hash cannot answer
    // SCRAM.
    return (md5_asked && secret->kind != Kind::scram) || secret->kind == Kind::md5;
  }
  // The method most listed users get; on a tie, the one auth_type names.
  const int total = listed.plain + listed.md5 + listed.scram;
  const int md5_users = md5_asked ? listed.plain + listed.md5 : listed.md5;
  return md5_asked ? 2 * md5_users >= total : 2 * md5_users > total;
}

bool cleartext_password_matches(std::string_view user, std::string_view password,
                                const auth::UserSecret* secret, std::string_view mock_secret) {
  const bool has_verifier = secret && secret->kind != Kind::md5;
  auth::ScramVerifier mock;
  if (!has_verifier) mock = auth::mock_verifier(user, mock_secret);
  const auth::ScramVerifier& verifier = has_verifier ? secret->verifier : mock;
  auth::ScramVerifier derived =
      auth::scram_verifier_from_password(password, verifier.salt, verifier.iterations);
  const bool verifier_matches =
      auth::constant_time_equal(auth::as_view(derived.stored_key), auth::as_view(verifier.stored_key));
  if (!secret) return false;
  if (secret->kind == Kind::md5)
    return auth::constant_time_equal(auth::md5_stored_hash(user, password), secret->text);
  return verifier_matches;
}

}  // namespace pgmux::session
