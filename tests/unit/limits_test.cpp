// Unit tests of the login limits' bookkeeping: the per-address token bucket, per-database and per-user client
// counts, and the challenge an unknown user gets.
#include <catch2/catch.hpp>

#include "pgmux/auth/md5.hpp"
#include "pgmux/auth/scram.hpp"
#include "session/client_limits.hpp"
#include "session/connection_rate.hpp"
#include "session/unknown_user.hpp"

using namespace pgmux::session;
using namespace std::chrono_literals;
using pgmux::config::AuthType;

TEST_CASE("the per-address bucket lets a burst through, refuses the next, and refills at the rate",
          "[limits]") {
  ConnectionRateLimiter limiter;
  auto t0 = ConnectionRateLimiter::Clock::now();
  for (int i = 0; i < 3; ++i) CHECK(limiter.admit("10.0.0.1", 2.0, 3, t0));
  CHECK_FALSE(limiter.admit("10.0.0.1", 2.0, 3, t0));
  CHECK(limiter.admit("10.0.0.2", 2.0, 3, t0));  // another address has its own bucket
  CHECK_FALSE(limiter.admit("10.0.0.1", 2.0, 3, t0 + 400ms));
  CHECK(limiter.admit("10.0.0.1", 2.0, 3, t0 + 500ms));  // one token back after 1/rate
  CHECK_FALSE(limiter.admit("10.0.0.1", 2.0, 3, t0 + 500ms));
  // A long pause refills to the burst, not beyond.
  auto later = t0 + 1h;
  for (int i = 0; i < 3; ++i) CHECK(limiter.admit("10.0.0.1", 2.0, 3, later));
  CHECK_FALSE(limiter.admit("10.0.0.1", 2.0, 3, later));
}

TEST_CASE("a rate of 0 admits everyone and remembers nothing", "[limits]") {
  ConnectionRateLimiter limiter;
  for (int i = 0; i < 100; ++i) CHECK(limiter.admit("10.0.0.1", 0, 1, ConnectionRateLimiter::Clock::now()));
  CHECK(limiter.addresses() == 0);
}

TEST_CASE("the address table stays bounded under a flood from more addresses than it holds", "[limits]") {
  ConnectionRateLimiter limiter;
  auto now = ConnectionRateLimiter::Clock::now();
  const std::size_t flood = ConnectionRateLimiter::kMaxAddresses + 1000;
  for (std::size_t i = 0; i < flood; ++i) limiter.admit("a" + std::to_string(i), 0.001, 1, now);
  CHECK(limiter.addresses() <= ConnectionRateLimiter::kMaxAddresses);
}

TEST_CASE("client limits count per database and per user, and free a place when a client leaves",
          "[limits]") {
  ClientLimits limits;
  CHECK(limits.try_join("app", "alice", 2, 0) == ClientLimits::Refusal::none);
  CHECK(limits.try_join("app", "bob", 2, 0) == ClientLimits::Refusal::none);
  CHECK(limits.try_join("app", "carol", 2, 0) == ClientLimits::Refusal::database);
  CHECK(limits.try_join("other", "alice", 0, 1) == ClientLimits::Refusal::user);
  CHECK(limits.try_join("other", "carol", 0, 1) == ClientLimits::Refusal::none);
  limits.leave("app", "bob");
  CHECK(limits.try_join("app", "carol", 2, 0) == ClientLimits::Refusal::none);
  CHECK(limits.try_join("app", "dave", 0, 0) == ClientLimits::Refusal::none);  // 0: no limit
}

TEST_CASE("an unknown user is challenged the way most listed users are", "[limits][login]") {
  pgmux::auth::UserSecret md5{pgmux::auth::UserSecret::Kind::md5, "md5", {}};
  pgmux::auth::UserSecret scram{pgmux::auth::UserSecret::Kind::scram, "SCRAM", {}};
  pgmux::auth::UserSecret plain{pgmux::auth::UserSecret::Kind::plain, "pw", {}};
  // Known users: their secret decides.
  CHECK(challenge_with_md5(AuthType::scram_sha_256, &md5, {}));
  CHECK_FALSE(challenge_with_md5(AuthType::scram_sha_256, &plain, {}));
  CHECK(challenge_with_md5(AuthType::md5, &plain, {}));
  CHECK_FALSE(challenge_with_md5(AuthType::md5, &scram, {}));
  // Unknown users: the majority, ties to what auth_type names.
  CHECK_FALSE(challenge_with_md5(AuthType::scram_sha_256, nullptr, {.plain = 1, .md5 = 1, .scram = 1}));
  CHECK(challenge_with_md5(AuthType::scram_sha_256, nullptr, {.plain = 0, .md5 = 3, .scram = 1}));
  CHECK(challenge_with_md5(AuthType::md5, nullptr, {.plain = 1, .md5 = 1, .scram = 1}));
  CHECK(challenge_with_md5(AuthType::md5, nullptr, {.plain = 0, .md5 = 1, .scram = 1}));
  CHECK_FALSE(challenge_with_md5(AuthType::md5, nullptr, {.plain = 0, .md5 = 1, .scram = 3}));
}

TEST_CASE("the unknown user's verifier has a stable salt per user and Postgres's iteration count",
          "[limits][login]") {
  auto a = pgmux::auth::mock_verifier("nobody", "secret");
  auto b = pgmux::auth::mock_verifier("nobody", "secret");
  CHECK(a.salt == b.salt);
  CHECK(a.salt.size() == 16);
  CHECK(a.iterations == 4096);
  CHECK(pgmux::auth::mock_verifier("someone", "secret").salt != a.salt);
}

TEST_CASE(
    "a password sent in clear is checked against every kind of secret, and never matches an unknown user",
    "[limits][login]") {
  auto plain = *pgmux::auth::parse_user_secret("alice", "s3cret");
  auto md5 = *pgmux::auth::parse_user_secret("alice", pgmux::auth::md5_stored_hash("alice", "s3cret"));
  auto scram = *pgmux::auth::parse_user_secret(
      "alice", pgmux::auth::format_scram_verifier(pgmux::auth::new_scram_verifier("s3cret", 4096)));
  for (const auto* secret : {&plain, &md5, &scram}) {
    CHECK(cleartext_password_matches("alice", "s3cret", secret, "mock"));
    CHECK_FALSE(cleartext_password_matches("alice", "wrong", secret, "mock"));
  }
  CHECK_FALSE(cleartext_password_matches("alice", "s3cret", nullptr, "mock"));
  CHECK_FALSE(cleartext_password_matches("alice", "", nullptr, "mock"));
}
