// Small wrappers over OpenSSL used by the authentication state machines.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "pgmux/auth/secrets.hpp"

namespace pgmux::auth {

std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);  // nullopt on bad input

Key256 sha256(std::string_view bytes);
Key256 hmac_sha256(std::string_view key, std::string_view message);
Key256 pbkdf2_sha256(std::string_view password, std::string_view salt, int iterations);
std::string md5_hex(std::string_view bytes);  // 32 lowercase hex digits

// Cryptographically secure random bytes (getrandom); aborts if the generator fails.
void random_bytes(std::span<std::uint8_t> out);
std::string random_string(std::size_t n);  // n raw random bytes

// Comparison whose time does not depend on where the inputs differ.
bool constant_time_equal(std::string_view a, std::string_view b);

inline std::string_view as_view(const Key256& k) {
  return {reinterpret_cast<const char*>(k.data()), k.size()};
}

}  // namespace pgmux::auth
