// OpenSSL-backed hashing, MACs, randomness and a strict base64 codec for the auth state machines.
#include "pgmux/auth/crypto.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace pgmux::auth {
namespace {

constexpr char kB64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Value of a base64 digit, or -1 for anything outside the standard alphabet (including '=').
int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// OpenSSL wants non-null pointers even for empty inputs; string_view::data() may be null.
const unsigned char* bytes_of(std::string_view s) {
  static const unsigned char kEmpty = 0;
  return s.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(s.data());
}

// A failing digest or MAC means a broken crypto library (e.g. MD5 disabled by a FIPS provider); continuing
// with garbage would silently break authentication, so stop loudly.
[[noreturn]] void crypto_failure(const char* what) {
  std::fprintf(stderr, "pgmux: OpenSSL %s failed\n", what);
  std::abort();
}

// SHA-256, fetched from the provider once. EVP_sha256() and HMAC() look the algorithm up on every call in
// OpenSSL 3, which cost more than the hashing itself on the login path (a SCRAM login computes a few).
const EVP_MD* sha256_md() {
  static EVP_MD* const md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (!fetched) crypto_failure("SHA-256 fetch");
    return fetched;
  }();
  return md;
}

// One digest context per thread, reset for every use.
EVP_MD_CTX* digest_context() {
  struct Owned {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Owned() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Owned owned;
  if (!owned.ctx) crypto_failure("digest context");
  return owned.ctx;
}

void digest_parts(std::initializer_list<std::string_view> parts, unsigned char* out) {
  EVP_MD_CTX* ctx = digest_context();
  unsigned int len = 0;
  bool ok = EVP_DigestInit_ex2(ctx, sha256_md(), nullptr) == 1;
  for (std::string_view part : parts) ok = ok && EVP_DigestUpdate(ctx, part.data(), part.size()) == 1;
  if (!ok || EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != 32) crypto_failure("SHA-256");
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  // Sized once and written by index: appending char by char checked the capacity for every digit, which
  // showed in a SCRAM login's profile.
  std::string out((bytes.size() + 2) / 3 * 4, '=');
  char* digit = out.data();
  const auto byte = [&](std::size_t i) { return std::uint32_t{static_cast<unsigned char>(bytes[i])}; };
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t n = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    *digit++ = kB64Alphabet[(n >> 18) & 63];
    *digit++ = kB64Alphabet[(n >> 12) & 63];
    *digit++ = kB64Alphabet[(n >> 6) & 63];
    *digit++ = kB64Alphabet[n & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {  // the padding '=' are in place already
    const std::uint32_t n = byte(i) << 16 | (rest == 2 ? byte(i + 1) << 8 : 0);
    *digit++ = kB64Alphabet[(n >> 18) & 63];
    *digit++ = kB64Alphabet[(n >> 12) & 63];
    if (rest == 2) *digit = kB64Alphabet[(n >> 6) & 63];
  }
  return out;
}

// Strict RFC 4648 decoding: no whitespace, padding required, and the unused bits of the last digit must be
// zero, so every byte string has exactly one accepted encoding (peers that differ are then visibly wrong).
std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::size_t pad = 0;
  if (!text.empty() && text.back() == '=') pad = text.size() >= 2 && text[text.size() - 2] == '=' ? 2 : 1;
  std::string out(text.size() / 4 * 3 - pad, '\0');  // written by index, as in base64_encode
  char* byte = out.data();
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const std::size_t digits = last ? 4 - pad : 4;
    std::uint32_t n = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      int v = 0;
      if (j < digits) {
        v = b64_value(static_cast<unsigned char>(text[i + j]));
        if (v < 0) return std::nullopt;  // also catches '=' before the final group
      }
      n = (n << 6) | static_cast<std::uint32_t>(v);
    }
    *byte++ = static_cast<char>((n >> 16) & 0xff);
    if (digits >= 3) *byte++ = static_cast<char>((n >> 8) & 0xff);
    if (digits == 4) *byte++ = static_cast<char>(n & 0xff);
    if (digits == 2 && (n & 0xffff) != 0) return std::nullopt;
    if (digits == 3 && (n & 0xff) != 0) return std::nullopt;
  }
  return out;
}

Key256 sha256(std::string_view bytes) {
  Key256 out{};
  digest_parts({bytes}, out.data());
  return out;
}

// HMAC (RFC 2104) over the cached SHA-256: H((K ^ opad) || H((K ^ ipad) || message)), the key hashed first
// when longer than the 64-byte block.
Key256 hmac_sha256(std::string_view key, std::string_view message) {
  constexpr std::size_t kBlock = 64;
  std::array<unsigned char, kBlock> block{};
  if (key.size() > kBlock)
    digest_parts({key}, block.data());
  else
    std::copy(key.begin(), key.end(), block.begin());
  std::array<char, kBlock> inner_pad, outer_pad;
  for (std::size_t i = 0; i < kBlock; ++i) {
    inner_pad[i] = static_cast<char>(block[i] ^ 0x36);
    outer_pad[i] = static_cast<char>(block[i] ^ 0x5c);
  }
  Key256 inner{}, out{};
  digest_parts({{inner_pad.data(), kBlock}, message}, inner.data());
  digest_parts({{outer_pad.data(), kBlock}, as_view(inner)}, out.data());
  OPENSSL_cleanse(block.data(), block.size());
  OPENSSL_cleanse(inner_pad.data(), kBlock);
  OPENSSL_cleanse(outer_pad.data(), kBlock);
  return out;
}

Key256 pbkdf2_sha256(std::string_view password, std::string_view salt, int iterations) {
  Key256 out{};
  if (iterations < 1 || password.size() > static_cast<std::size_t>(INT_MAX) ||
      salt.size() > static_cast<std::size_t>(INT_MAX))
    crypto_failure("PBKDF2 arguments");  // callers validate iteration counts before getting here
  if (PKCS5_PBKDF2_HMAC(reinterpret_cast<const char*>(bytes_of(password)), static_cast<int>(password.size()),
                        bytes_of(salt), static_cast<int>(salt.size()), iterations, sha256_md(),
                        static_cast<int>(out.size()), out.data()) != 1)
    crypto_failure("PBKDF2-HMAC-SHA-256");
  return out;
}

std::string md5_hex(std::string_view bytes) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  if (EVP_Digest(bytes_of(bytes), bytes.size(), digest.data(), &len, EVP_md5(), nullptr) != 1 || len != 16)
    crypto_failure("MD5");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(32);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0x0f];
  }
  return out;
}

// getrandom(2): the kernel's CSPRNG in one system call. RAND_bytes took twice as long here (its DRBG sits
// behind locks and fork checks), and the login path draws a nonce and a cancel key for every client.
void random_bytes(std::span<std::uint8_t> out) {
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = getrandom(out.data() + done, out.size() - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) crypto_failure("getrandom");
    done += static_cast<std::size_t>(n);
  }
}

std::string random_string(std::size_t n) {
  std::string out(n, '\0');
  random_bytes({reinterpret_cast<std::uint8_t*>(out.data()), out.size()});
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    // Lengths are not secret, but keep the work shaped like a real comparison and independent of b's content.
    volatile int sink = CRYPTO_memcmp(bytes_of(a), bytes_of(a), a.size());
    (void)sink;
    return false;
  }
  return CRYPTO_memcmp(bytes_of(a), bytes_of(b), a.size()) == 0;
}

}  // namespace pgmux::auth
