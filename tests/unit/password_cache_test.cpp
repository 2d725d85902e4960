// The cache of successful cleartext password checks that wire logins and POST /sql share.
#include <catch2/catch.hpp>

#include "pgmux/auth/md5.hpp"
#include "pgmux/auth/scram.hpp"
#include "session/password_cache.hpp"

using namespace pgmux;
using namespace std::chrono_literals;
using session::PasswordCache;

TEST_CASE("the password cache remembers successes for a while, per user, within its size", "[auth]") {
  PasswordCache cache(2, 1000ms);
  auto t0 = PasswordCache::Clock::now();
  CHECK_FALSE(cache.recently_verified("a", "sa", "pa", t0));
  cache.remember("a", "sa", "pa", t0);
  CHECK(cache.recently_verified("a", "sa", "pa", t0 + 999ms));
  CHECK_FALSE(cache.recently_verified("a", "sa", "pb", t0));  // another password is not the one checked
  CHECK_FALSE(cache.recently_verified("a", "sb", "pa", t0));  // nor is another secret (a reloaded password)
  CHECK_FALSE(cache.recently_verified("ap", "sa", "a", t0));  // the triple, not the concatenation
  CHECK_FALSE(cache.recently_verified("a", "sa", "pa", t0 + 1000ms));  // expired
  cache.remember("b", "sb", "pb", t0 + 1ms);
  cache.remember("c", "sc", "pc", t0 + 2ms);  // full: "a" (closest to expiring) goes
  CHECK(cache.size() == 2);
  CHECK_FALSE(cache.recently_verified("a", "sa", "pa", t0 + 3ms));
  CHECK(cache.recently_verified("b", "sb", "pb", t0 + 3ms));
  CHECK(cache.recently_verified("c", "sc", "pc", t0 + 3ms));
  cache.reconfigure(2, 1000ms);  // a reload forgets everything
  CHECK(cache.size() == 0);
  CHECK_FALSE(cache.recently_verified("b", "sb", "pb", t0 + 3ms));
  PasswordCache off(0, 1000ms);
  off.remember("a", "sa", "pa", t0);
  CHECK_FALSE(off.recently_verified("a", "sa", "pa", t0));
}

TEST_CASE("cleartext passwords are checked against plain, md5 and SCRAM secrets, and successes remembered",
          "[auth]") {
  auto plain = auth::parse_user_secret("u", "pw");
  auto md5 = auth::parse_user_secret("u", auth::md5_stored_hash("u", "pw"));
  auto scram = auth::parse_user_secret(
      "u", auth::format_scram_verifier(auth::scram_verifier_from_password("pw", "saltsalt", 4096)));
  REQUIRE((plain && md5 && scram));
  REQUIRE(scram->kind == auth::UserSecret::Kind::scram);
  for (const auto* secret : {&*plain, &*md5, &*scram}) {
    PasswordCache cache(10, 60s);
    CHECK_FALSE(session::check_cleartext_password(cache, "u", "pw2", secret, "mock"));
    CHECK_FALSE(session::check_cleartext_password(cache, "u", "", secret, "mock"));
    CHECK(cache.size() == 0);  // failures are never remembered
    CHECK(session::check_cleartext_password(cache, "u", "pw", secret, "mock"));
    CHECK(cache.size() == 1);
    CHECK(session::check_cleartext_password(cache, "u", "pw", secret, "mock"));  // from the cache
    CHECK_FALSE(session::check_cleartext_password(cache, "u", "pw2", secret, "mock"));
  }
  PasswordCache cache(10, 60s);
  CHECK_FALSE(session::check_cleartext_password(cache, "v", "pw", &*md5, "mock"));  // md5 salts with the name
  CHECK_FALSE(session::check_cleartext_password(cache, "u", "pw", nullptr, "mock"));  // unknown user
  CHECK(cache.size() == 0);
}
