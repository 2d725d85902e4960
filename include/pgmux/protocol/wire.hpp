// Byte-level facts of the Postgres v3 wire protocol: codes, integer encoding, SQLSTATEs pgmux originates.
#pragma once

#include <cstdint>
#include <cstring>

namespace pgmux::protocol {

// Startup-phase packets carry a 4-byte code instead of a type byte.
inline constexpr std::uint32_t kProtocol30 = 196608;  // 3.0
inline constexpr std::uint32_t kCancelRequestCode = 80877102;
inline constexpr std::uint32_t kSslRequestCode = 80877103;
inline constexpr std::uint32_t kGssEncRequestCode = 80877104;
inline constexpr std::uint32_t kMaxStartupPacket = 10000;  // Postgres's own cap

inline constexpr std::size_t kHeaderSize = 5;  // type byte + int32 length (which counts itself)

// Authentication request codes ('R' messages).
enum AuthCode : std::uint32_t {
  kAuthOk = 0,
  kAuthCleartext = 3,
  kAuthMd5 = 5,
  kAuthSasl = 10,
  kAuthSaslContinue = 11,
  kAuthSaslFinal = 12,
};

namespace sqlstate {
inline constexpr const char* kProtocolViolation = "08P01";
inline constexpr const char* kConnectionFailure = "08006";
inline constexpr const char* kUnableToConnect = "08001";
// The server's TLS falls short of the database's sslmode (no TLS, a certificate that does not verify): a
// configuration problem, so the login is not retried as an unreachable server's is.
inline constexpr const char* kServerRejectedConnection = "08004";
inline constexpr const char* kInvalidPassword = "28P01";
inline constexpr const char* kInvalidAuthorization = "28000";
inline constexpr const char* kUnknownDatabase = "3D000";
inline constexpr const char* kTooManyConnections = "53300";
inline constexpr const char* kAdminShutdown = "57P01";
inline constexpr const char* kIdleSessionTimeout = "57P05";
inline constexpr const char* kQueryCanceled = "57014";
inline constexpr const char* kFeatureNotSupported = "0A000";
inline constexpr const char* kSyntaxError = "42601";
inline constexpr const char* kObjectNotInPrerequisiteState = "55000";
}  // namespace sqlstate

inline std::uint32_t read_u32(const char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return __builtin_bswap32(v);
}

inline void write_u32(char* p, std::uint32_t v) {
  v = __builtin_bswap32(v);
  std::memcpy(p, &v, 4);
}

}  // namespace pgmux::protocol
