// A throwaway CA and certificates signed by it, made with the openssl CLI in a temp dir removed after.
#pragma once

#include <string>

#include "process.hpp"

namespace pgmux::test {

struct CertFiles {
  std::string cert, key;  // PEM paths
};

// On construction: a CA, and a server certificate for localhost and 127.0.0.1 (subjectAltName). Keys are
// world-readable so that Postgres's own user can copy them; they protect nothing.
class TestCerts {
 public:
  TestCerts();
  const std::string& ca() const { return ca_; }
  const CertFiles& server() const { return server_; }
  // Another server certificate for localhost/127.0.0.1 from the same CA, written to new files named `name`.
  CertFiles make_server(const std::string& name);
  // A client certificate with CN `common_name`, signed by this CA.
  CertFiles make_client(const std::string& common_name);
  // A client certificate from a CA of its own (which this one does not trust).
  CertFiles make_foreign_client(const std::string& common_name);
  std::string path(const std::string& file) const { return (dir_.path() / file).string(); }
  // The SHA-256 fingerprint of a certificate file, as openssl prints it ("AB:CD:...").
  std::string fingerprint(const std::string& cert) const;

 private:
  CertFiles sign(const std::string& name, const std::string& subject, const std::string& extensions,
                 const std::string& ca_name);
  TempDir dir_;
  std::string ca_;
  CertFiles server_;
};

}  // namespace pgmux::test
