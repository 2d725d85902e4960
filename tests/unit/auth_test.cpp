// Specifies the pure auth module: base64, crypto primitives, secrets, SCRAM-SHA-256 both sides, and md5.
#include <catch2/catch.hpp>

#include <string>

#include "pgmux/auth/crypto.hpp"
#include "pgmux/auth/md5.hpp"
#include "pgmux/auth/scram.hpp"
#include "pgmux/auth/secrets.hpp"

using namespace pgmux::auth;

namespace {

std::string to_hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 0x0f];
  }
  return out;
}

// RFC 7677 section 3.
constexpr std::string_view kRfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr std::string_view kRfcServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kRfcClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+"
    "Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kRfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

ScramVerifier rfc_verifier() {
  return scram_verifier_from_password("pencil", *base64_decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
}

// A verifier Postgres 15.18 stored for `CREATE ROLE bench PASSWORD 'bench'`.
constexpr std::string_view kPostgresBenchVerifier =
    "SCRAM-SHA-256$4096:om6+d2fluNiKl7vbvF8rVQ==$iRrjzReCIbuvSoJ0J0/xQM4ip+tUB50w/WlOZ0nogCk=:"
    "Gn1ssLk7oAhHbD3iJje6fagoj6NTFzkkn9fy+9V7mgU=";

// Runs a whole exchange (bound to `end_point` when given); true when both the server accepts the proof and
// the client accepts the server.
bool login(ScramClient& client, ScramServer& server, std::string_view end_point = {}) {
  const auto server_first = server.on_client_first(client.client_first(end_point));
  if (!server_first) return false;
  const auto client_final = client.on_server_first(*server_first);
  if (!client_final) return false;
  const auto server_final = server.on_client_final(*client_final);
  return server_final && client.on_server_final(*server_final);
}

}  // namespace

TEST_CASE("base64 round-trips every length and the RFC 4648 vectors") {
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  std::string bytes;
  for (int i = 0; i < 300; ++i) {
    CHECK(base64_decode(base64_encode(bytes)) == bytes);
    bytes += static_cast<char>(i * 37);
  }
}

TEST_CASE("base64_decode rejects bad input") {
  for (std::string_view bad : {"Zg=", "Zg", "Z", "Zm9v!", "Zm9v Zg==", "Z===", "====", "Zg==Zg==", "Zm=v",
                               "Zh==", "Zm9=", "\xff\xff\xff\xff"}) {
    INFO(bad);
    CHECK_FALSE(base64_decode(bad));
  }
  CHECK(base64_decode("") == "");
}

TEST_CASE("constant_time_equal compares contents and lengths") {
  CHECK(constant_time_equal("", ""));
  CHECK(constant_time_equal("abc", "abc"));
  CHECK_FALSE(constant_time_equal("abc", "abd"));
  CHECK_FALSE(constant_time_equal("abc", "ab"));
  CHECK_FALSE(constant_time_equal("", "a"));
  CHECK_FALSE(constant_time_equal(std::string("a\0b", 3), std::string("a\0c", 3)));
}

TEST_CASE("hash primitives match published vectors") {
  CHECK(to_hex(as_view(sha256("abc"))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // RFC 4231 test case 2.
  CHECK(to_hex(as_view(hmac_sha256("Jefe", "what do ya want for nothing?"))) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // RFC 4231 test case 6: a key longer than the block is hashed first.
  CHECK(to_hex(as_view(hmac_sha256(std::string(131, '\xaa'),
                                   "Test Using Larger Than Block-Size Key - Hash Key First"))) ==
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  // A key of exactly one block is used as it is.
  CHECK(to_hex(as_view(hmac_sha256(std::string(64, 'k'), ""))) ==
        "83026a325aaee70e36cfe607536aa1054104ad1077c36134810d4ccded1ccd3b");  // Python hmac
  CHECK(to_hex(as_view(pbkdf2_sha256("password", "salt", 1))) ==
        "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b");
  CHECK(md5_hex("") == "d41d8cd98f00b204e9800998ecf8427e");
}

TEST_CASE("random_string gives the asked length and differs between calls") {
  CHECK(random_string(0).empty());
  const std::string a = random_string(32), b = random_string(32);
  CHECK(a.size() == 32);
  CHECK(a != b);
}

TEST_CASE("a SCRAM exchange with RFC 7677's test vector produces its exact messages") {
  ScramServer server(rfc_verifier(), "user", "mock", std::string(kRfcServerNonce));
  CHECK(server.on_client_first(kRfcClientFirst) == std::string(kRfcServerFirst));
  CHECK(server.on_client_final(kRfcClientFinal) == std::string(kRfcServerFinal));
  CHECK(server.error().empty());
}

TEST_CASE("a verifier parses and formats back to the same text") {
  const std::string text = format_scram_verifier(rfc_verifier());
  CHECK(text.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"));
  const auto parsed = parse_scram_verifier(text);
  REQUIRE(parsed);
  CHECK(parsed->iterations == 4096);
  CHECK(parsed->stored_key == rfc_verifier().stored_key);
  CHECK(parsed->server_key == rfc_verifier().server_key);
  CHECK(format_scram_verifier(*parsed) == text);
}

TEST_CASE("a verifier stored by Postgres 15 matches one derived from the same password and salt") {
  const auto pg = parse_scram_verifier(kPostgresBenchVerifier);
  REQUIRE(pg);
  const ScramVerifier ours = scram_verifier_from_password("bench", pg->salt, pg->iterations);
  CHECK(ours.stored_key == pg->stored_key);
  CHECK(ours.server_key == pg->server_key);
  CHECK(format_scram_verifier(ours) == kPostgresBenchVerifier);

  ScramServer server(*pg, "bench", "mock", "servernonce");
  auto client = ScramClient::with_password("bench", "clientnonce");
  CHECK(login(client, server));
}

TEST_CASE("malformed verifiers are rejected") {
  const std::string good = format_scram_verifier(rfc_verifier());
  const std::string keys = good.substr(good.find('$', 14));  // "$<stored>:<server>"
  const std::string short_key = base64_encode(std::string(31, 'k'));
  for (const std::string& bad :
       {std::string("SCRAM-SHA-256$"), std::string("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ=="),
        "SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==" + keys, "SCRAM-SHA-256$-1:W22ZaJ0SNY7soEsUEjb6gQ==" + keys,
        "SCRAM-SHA-256$x:W22ZaJ0SNY7soEsUEjb6gQ==" + keys, "SCRAM-SHA-256$4096:" + keys,
        "SCRAM-SHA-256$4096:!!!!" + keys,
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" + short_key + ":" + short_key, good + "$",
        good + ":AAAA", "SCRAM-SHA-1$4096:W22ZaJ0SNY7soEsUEjb6gQ==" + keys}) {
    INFO(bad);
    CHECK_FALSE(parse_scram_verifier(bad));
  }
}

TEST_CASE("parse_user_secret classifies scram, md5 and plain secrets") {
  const std::string verifier = format_scram_verifier(rfc_verifier());
  const auto scram = parse_user_secret("user", verifier);
  REQUIRE(scram);
  CHECK(scram->kind == UserSecret::Kind::scram);
  CHECK(scram->text == verifier);
  CHECK(scram->verifier.stored_key == rfc_verifier().stored_key);
  CHECK_FALSE(parse_user_secret("user", "SCRAM-SHA-256$4096:broken"));

  const std::string md5 = md5_stored_hash("user", "pencil");
  const auto hashed = parse_user_secret("user", md5);
  REQUIRE(hashed);
  CHECK(hashed->kind == UserSecret::Kind::md5);
  CHECK(hashed->text == md5);

  // Postgres treats "md5" text of any other shape as a password, and so do we.
  for (const std::string& text :
       {std::string("md5"), md5.substr(0, 34), md5 + "0", "md5" + std::string(32, 'A'),
        "md5" + std::string(32, 'g'), std::string("pencil")}) {
    INFO(text);
    const auto plain = parse_user_secret("user", text);
    REQUIRE(plain);
    CHECK(plain->kind == UserSecret::Kind::plain);
    CHECK(plain->text == text);
  }
}

TEST_CASE("a plain secret gets a deterministic verifier salted from the user name") {
  const auto secret = parse_user_secret("bench", "bench");
  REQUIRE(secret);
  CHECK(secret->verifier.iterations == 4096);
  CHECK(secret->verifier.salt == std::string(as_view(sha256("pgmux-salt:bench")).substr(0, 16)));
  // Cross-checked with Python's hashlib.pbkdf2_hmac and hmac.
  CHECK(format_scram_verifier(secret->verifier) ==
        "SCRAM-SHA-256$4096:FPdHkI0v3hA2JPSPvtO5Fw==$jgFtsWvqmyP2Uu0a9+W9tX/K7Wy1qEj3hDq/cGMRx5A=:"
        "CFJfONxKvEEnYZvho+lq3MGTOPdVjfndQspJKtFWIGU=");
  CHECK(parse_user_secret("bench", "bench")->verifier.stored_key == secret->verifier.stored_key);
  CHECK(parse_user_secret("other", "bench")->verifier.salt != secret->verifier.salt);
}

TEST_CASE("ScramClient logs in to ScramServer with the right password") {
  const auto secret = parse_user_secret("alice", "s3cret");
  ScramServer server(secret->verifier, "alice", "mock", "Srv+Nonce/123");
  auto client = ScramClient::with_password("s3cret", "Cli=Nonce!");
  CHECK(client.client_first() == "n,,n=,r=Cli=Nonce!");
  CHECK(login(client, server));
  CHECK(server.error().empty());
  CHECK(client.error().empty());
}

TEST_CASE("ScramServer rejects a wrong password at the proof") {
  ScramServer server(rfc_verifier(), "user", "mock", "servernonce");
  auto client = ScramClient::with_password("pencil2", "clientnonce");
  const auto server_first = server.on_client_first(client.client_first());
  REQUIRE(server_first);
  const auto client_final = client.on_server_first(*server_first);
  REQUIRE(client_final);
  CHECK_FALSE(server.on_client_final(*client_final));
  CHECK_THAT(server.error(), Catch::Contains("proof"));
  CHECK(server.client_key() == Key256{});
}

TEST_CASE("ScramServer rejects a client-final with a tampered nonce or channel binding") {
  const std::string proof = std::string(kRfcClientFinal.substr(kRfcClientFinal.find(",p=")));
  const std::string nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
  for (const std::string& bad : {"c=biws,r=" + nonce + "X" + proof, "c=biws,r=" + nonce.substr(1) + proof,
                                 "c=biws,r=rOprNGfwEbeRWgbNEkqO" + proof, "c=eSws,r=" + nonce + proof,
                                 "c=cD10bHMtdW5pcXVlLCw=,r=" + nonce + proof}) {
    INFO(bad);
    ScramServer server(rfc_verifier(), "user", "mock", std::string(kRfcServerNonce));
    REQUIRE(server.on_client_first(kRfcClientFirst));
    CHECK_FALSE(server.on_client_final(bad));
    CHECK_FALSE(server.error().empty());
  }
}

TEST_CASE("ScramServer accepts the y,, gs2 header only with c=eSws") {
  auto run = [](std::string_view cbind) {
    ScramServer server(rfc_verifier(), "user", "mock", "servernonce");
    auto client = ScramClient::with_password("pencil", "clientnonce");
    const std::string first = "y,," + client.client_first().substr(3);
    const auto server_first = server.on_client_first(first);
    REQUIRE(server_first);
    // The client signs c=biws; rebuild the final message by hand so the proof covers the c= we send.
    const std::string nonce = server_first->substr(2, server_first->find(',') - 2);
    const std::string without_proof = "c=" + std::string(cbind) + ",r=" + nonce;
    const std::string auth = "n=,r=clientnonce," + *server_first + "," + without_proof;
    const auto v = rfc_verifier();
    const Key256 client_key =
        hmac_sha256(as_view(pbkdf2_sha256("pencil", v.salt, v.iterations)), "Client Key");
    const Key256 sig = hmac_sha256(as_view(v.stored_key), auth);
    Key256 proof{};
    for (std::size_t i = 0; i < proof.size(); ++i) proof[i] = client_key[i] ^ sig[i];
    return server.on_client_final(without_proof + ",p=" + base64_encode(as_view(proof))).has_value();
  };
  CHECK(run("eSws"));
  CHECK_FALSE(run("biws"));
}

TEST_CASE("ScramServer rejects malformed client-first messages without crashing") {
  for (std::string_view bad :
       {"", ",", "n", "n,", "n,,", "garbage", "x,,n=,r=abc", "p=tls-server-end-point,,n=,r=abc",
        "n,a=user,n=,r=abc", "n,,r=abc", "n,,n=", "n,,n=,", "n,,n=,r=", "n,,n=,r=a b", "n,,m=ext,n=,r=abc",
        "n,,n=,r=abc,", "n,,n=,r=abc,1=x", "n,x,n=,r=abc"}) {
    INFO(bad);
    ScramServer server(rfc_verifier(), "user", "mock", "servernonce");
    CHECK_FALSE(server.on_client_first(bad));
    CHECK_FALSE(server.error().empty());
    // A failed exchange stays failed.
    CHECK_FALSE(server.on_client_final(kRfcClientFinal));
  }
}

TEST_CASE("ScramServer rejects malformed client-final messages without crashing") {
  const std::string nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
  for (const std::string& bad :
       {std::string(""), std::string("garbage"), std::string(",,"), "c=biws,r=" + nonce,
        "c=biws,r=" + nonce + ",p=", "c=biws,r=" + nonce + ",p=!!!!", "c=biws,r=" + nonce + ",p=AAAA",
        "r=" + nonce + ",c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,r=" + nonce,
        "c=biws,r=" + nonce + ",,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="}) {
    INFO(bad);
    ScramServer server(rfc_verifier(), "user", "mock", std::string(kRfcServerNonce));
    REQUIRE(server.on_client_first(kRfcClientFirst));
    CHECK_FALSE(server.on_client_final(bad));
    CHECK_FALSE(server.error().empty());
  }
}

TEST_CASE("ScramServer refuses messages out of order") {
  ScramServer server(rfc_verifier(), "user", "mock", std::string(kRfcServerNonce));
  CHECK_FALSE(server.on_client_final(kRfcClientFinal));
  ScramServer twice(rfc_verifier(), "user", "mock", std::string(kRfcServerNonce));
  REQUIRE(twice.on_client_first(kRfcClientFirst));
  CHECK_FALSE(twice.on_client_first(kRfcClientFirst));
}

TEST_CASE("an unknown user gets a normal-looking server-first and fails at the proof") {
  ScramServer server(std::nullopt, "mallory", "mock-secret", "servernonce");
  auto client = ScramClient::with_password("guess", "clientnonce");
  const auto server_first = server.on_client_first(client.client_first());
  REQUIRE(server_first);
  const std::string salt_b64 = base64_encode(as_view(hmac_sha256("mock-secret", "mallory")).substr(0, 16));
  CHECK(*server_first == "r=clientnonceservernonce,s=" + salt_b64 + ",i=4096");
  const auto client_final = client.on_server_first(*server_first);
  REQUIRE(client_final);
  CHECK_FALSE(server.on_client_final(*client_final));
  CHECK(server.error() == "unknown user");

  // The same user probed again sees the same salt, like a real user would.
  ScramServer again(std::nullopt, "mallory", "mock-secret", "servernonce");
  CHECK(again.on_client_first(client.client_first()) == server_first);
}

TEST_CASE("client_key after a login lets ScramClient::with_keys log in elsewhere with the same verifier") {
  const auto secret = parse_user_secret("alice", "s3cret");
  ScramServer front(secret->verifier, "alice", "mock", "frontnonce");
  auto client = ScramClient::with_password("s3cret", "clientnonce");
  REQUIRE(login(client, front));

  ScramServer backend(secret->verifier, "alice", "other-mock", "backendnonce");
  auto relay = ScramClient::with_keys(front.client_key(), secret->verifier.server_key, "relaynonce");
  CHECK(login(relay, backend));
}

TEST_CASE("ScramClient rejects a bad server-first") {
  for (std::string_view bad :
       {"", "garbage", "r=clientnonce,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        "r=othernonceXYZ,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "r=clientnonceXYZ,s=!!,i=4096",
        "r=clientnonceXYZ,s=,i=4096", "r=clientnonceXYZ,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
        "r=clientnonceXYZ,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096x", "r=clientnonceXYZ,s=W22ZaJ0SNY7soEsUEjb6gQ==",
        "m=ext,r=clientnonceXYZ,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"}) {
    INFO(bad);
    auto client = ScramClient::with_password("pencil", "clientnonce");
    client.client_first();
    CHECK_FALSE(client.on_server_first(bad));
    CHECK_FALSE(client.error().empty());
  }
}

TEST_CASE("ScramClient::on_server_final rejects a wrong signature and a server error") {
  auto start = [](ScramClient& client) {
    client.client_first();
    REQUIRE(client.on_server_first("r=clientnonceXYZ,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));
  };
  auto client = ScramClient::with_password("pencil", "clientnonce");
  start(client);
  CHECK_FALSE(client.on_server_final("v=" + base64_encode(std::string(32, 'x'))));
  CHECK_FALSE(client.on_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="));
  CHECK_FALSE(client.on_server_final("v=!!"));
  CHECK_FALSE(client.on_server_final(""));
  CHECK_FALSE(client.on_server_final("e=invalid-proof"));
  CHECK_THAT(client.error(), Catch::Contains("invalid-proof"));

  auto unstarted = ScramClient::with_password("pencil", "clientnonce");
  CHECK_FALSE(unstarted.on_server_final(kRfcServerFinal));
}

TEST_CASE("md5_stored_hash is md5 followed by md5_hex(password + user)") {
  const std::string hash = md5_stored_hash("user", "pencil");
  CHECK(hash == "md5" + md5_hex("penciluser"));
  CHECK(hash == "md520c46e3762c864548e296b33c3406aa9");
}

TEST_CASE("md5 client responses agree for a plain and an md5 secret and verify") {
  const Md5Salt salt{0x01, 0x02, 0xfe, 0x00};
  const auto plain = parse_user_secret("user", "pencil");
  const auto hashed = parse_user_secret("user", md5_stored_hash("user", "pencil"));
  REQUIRE(plain);
  REQUIRE(hashed);
  const std::string response = md5_client_response("user", *plain, salt);
  CHECK(response == md5_client_response("user", *hashed, salt));
  CHECK(response == "md5" + md5_hex(md5_hex("penciluser") + std::string("\x01\x02\xfe\x00", 4)));

  CHECK(md5_verify("user", *plain, salt, response));
  CHECK(md5_verify("user", *hashed, salt, response));
  CHECK_FALSE(md5_verify("user", *plain, Md5Salt{1, 2, 3, 4}, response));
  CHECK_FALSE(md5_verify("other", *plain, salt, response));
  CHECK_FALSE(md5_verify("user", *parse_user_secret("user", "wrong"), salt, response));
  CHECK_FALSE(md5_verify("user", *plain, salt, ""));
}

TEST_CASE("a SCRAM-only secret cannot answer or check md5") {
  const auto scram = parse_user_secret("user", format_scram_verifier(rfc_verifier()));
  REQUIRE(scram);
  const Md5Salt salt{1, 2, 3, 4};
  CHECK(md5_client_response("user", *scram, salt).empty());
  CHECK_FALSE(md5_verify("user", *scram, salt, ""));
  CHECK_FALSE(md5_verify("user", *scram, salt,
                         md5_client_response("user", *parse_user_secret("user", "pencil"), salt)));
}

// --- SCRAM-SHA-256-PLUS (channel binding tls-server-end-point) ---
namespace {

// A whole exchange by hand with gs2 header `gs2` and c= set to base64(`cbind_input`); the proof is right for
// password "pencil", so only the channel binding decides. nullopt: refused at the first message.
std::optional<bool> bound_login(const ScramChannelBinding& binding, const std::string& gs2,
                                const std::string& cbind_input) {
  ScramServer server(rfc_verifier(), "user", "mock", "servernonce", binding);
  const auto server_first = server.on_client_first(gs2 + "n=,r=clientnonce");
  if (!server_first) return std::nullopt;
  const std::string nonce = server_first->substr(2, server_first->find(',') - 2);
  const std::string without_proof = "c=" + base64_encode(cbind_input) + ",r=" + nonce;
  const std::string auth = "n=,r=clientnonce," + *server_first + "," + without_proof;
  const auto v = rfc_verifier();
  const Key256 client_key = hmac_sha256(as_view(pbkdf2_sha256("pencil", v.salt, v.iterations)), "Client Key");
  const Key256 sig = hmac_sha256(as_view(v.stored_key), auth);
  Key256 proof{};
  for (std::size_t i = 0; i < proof.size(); ++i) proof[i] = client_key[i] ^ sig[i];
  return server.on_client_final(without_proof + ",p=" + base64_encode(as_view(proof))).has_value();
}

const std::string kEndPoint = std::string(32, '\x5a');  // stands for the certificate's SHA-256
const std::string kPlusHeader = "p=tls-server-end-point,,";

}  // namespace

TEST_CASE("SCRAM-SHA-256-PLUS: c= must carry the gs2 header and this certificate's end-point hash",
          "[scram][tls]") {
  const ScramChannelBinding plus{.offered = true, .selected = true, .end_point = kEndPoint};
  CHECK(bound_login(plus, kPlusHeader, kPlusHeader + kEndPoint) == std::optional<bool>(true));
  // Another certificate's hash (a man in the middle's), none, or the header alone: refused at the proof step.
  CHECK(bound_login(plus, kPlusHeader, kPlusHeader + std::string(32, '\x5b')) == std::optional<bool>(false));
  CHECK(bound_login(plus, kPlusHeader, kPlusHeader) == std::optional<bool>(false));
  CHECK(bound_login(plus, kPlusHeader, "n,,") == std::optional<bool>(false));
}

TEST_CASE("SCRAM-SHA-256-PLUS: the gs2 header must match the mechanism chosen and what was offered",
          "[scram][tls]") {
  const ScramChannelBinding plus{.offered = true, .selected = true, .end_point = kEndPoint};
  const ScramChannelBinding offered_not_chosen{.offered = true, .selected = false, .end_point = kEndPoint};
  const ScramChannelBinding not_offered{};
  // PLUS chosen, yet 'n' or 'y': refused.
  CHECK_FALSE(bound_login(plus, "n,,", "n,,"));
  CHECK_FALSE(bound_login(plus, "y,,", "y,,"));
  // Another channel binding type than tls-server-end-point.
  CHECK_FALSE(bound_login(plus, "p=tls-unique,,", "p=tls-unique,," + kEndPoint));
  // 'p' with plain SCRAM-SHA-256 chosen.
  CHECK_FALSE(bound_login(offered_not_chosen, kPlusHeader, kPlusHeader + kEndPoint));
  CHECK_FALSE(bound_login(not_offered, kPlusHeader, kPlusHeader + kEndPoint));
  // 'n' (client cannot bind) is fine either way.
  CHECK(bound_login(offered_not_chosen, "n,,", "n,,") == std::optional<bool>(true));
  CHECK(bound_login(not_offered, "n,,", "n,,") == std::optional<bool>(true));
  // 'y' (client can bind, thinks we cannot): fine without TLS, a downgrade where PLUS was offered.
  CHECK(bound_login(not_offered, "y,,", "y,,") == std::optional<bool>(true));
  ScramServer server(rfc_verifier(), "user", "mock", "servernonce", offered_not_chosen);
  CHECK_FALSE(server.on_client_first("y,,n=,r=clientnonce"));
  CHECK(server.binding_refused());
  CHECK(server.error().find("channel binding negotiation error") != std::string::npos);
}

TEST_CASE("ScramClient with a tls-server-end-point hash logs in to a PLUS ScramServer bound to that hash",
          "[scram][tls]") {
  const ScramChannelBinding plus{.offered = true, .selected = true, .end_point = kEndPoint};
  ScramServer server(rfc_verifier(), "user", "mock", "servernonce", plus);
  auto client = ScramClient::with_password("pencil", "clientnonce");
  CHECK(client.client_first(kEndPoint).starts_with(kPlusHeader));
  CHECK(login(client, server, kEndPoint));
  // The hash of another certificate (a man in the middle's): the server refuses the proof.
  ScramServer other(rfc_verifier(), "user", "mock", "servernonce", plus);
  auto fooled = ScramClient::with_password("pencil", "clientnonce");
  const auto server_first = other.on_client_first(fooled.client_first(std::string(32, '\x5b')));
  REQUIRE(server_first);
  const auto client_final = fooled.on_server_first(*server_first);
  REQUIRE(client_final);
  CHECK_FALSE(other.on_client_final(*client_final));
}
