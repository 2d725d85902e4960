// How a login for a user pgmux does not know is handled: exactly like one for a user it does know, up to the
// failed proof, so that neither the method, the messages nor the work done tell the two apart.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "pgmux/auth/secrets.hpp"
#include "pgmux/config/config.hpp"

namespace pgmux::session {

// How many listed users hold each kind of secret.
struct SecretKinds {
  int plain = 0, md5 = 0, scram = 0;
};
SecretKinds count_secret_kinds(const std::map<std::string, auth::UserSecret>& secrets);

// Whether a login is challenged with md5 rather than SCRAM (auth_type scram-sha-256 or md5). A known user's
// secret decides (an md5 hash can only answer md5, a verifier only SCRAM); `secret` null, an unknown user
// gets what most listed users get, so that the challenge alone does not say the user is missing.
bool challenge_with_md5(config::AuthType auth_type, const auth::UserSecret* secret,
                        const SecretKinds& listed);

// Whether a password sent in clear is the one `secret` stands for (null: an unknown user, never). Every call
// costs one PBKDF2: against the user's verifier (a SCRAM secret's, or the one derived from a plain
// password), else (an md5 hash, an unknown user) against auth::mock_verifier's, the same one the SCRAM
// exchange shows an unknown user.
bool cleartext_password_matches(std::string_view user, std::string_view password,
                                const auth::UserSecret* secret, std::string_view mock_secret);

}  // namespace pgmux::session
