// A throwaway CA and certificates signed by it, made with the openssl CLI in a temp dir removed after.
#include "test_certs.hpp"

#include <fstream>
#include <stdexcept>

namespace pgmux::test {
namespace {

void openssl(const std::string& arguments) {
  std::string out;
  if (run_shell("openssl " + arguments + " 2>&1", &out) != 0)
    throw std::runtime_error("openssl " + arguments + " failed: " + out);
}

// P-256 keys: quick to make, and ECDSA-SHA256 signatures, so tls-server-end-point hashes with SHA-256.
constexpr const char* kNewKey = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

void make_ca(const std::string& dir, const std::string& name) {
  openssl("req -x509 " + std::string(kNewKey) + " -days 2 -subj '/CN=pgmux test CA " + name + "' -keyout " +
          dir + "/" + name + ".key -out " + dir + "/" + name + ".crt");
}

// libpq wants a client key private to its owner; Postgres's own user must read a server key to copy it.
void set_key_mode(const CertFiles& files, const char* mode) {
  run_shell(std::string("chmod ") + mode + " " + files.key);
}

}  // namespace

TestCerts::TestCerts() : dir_("pgmux-test-certs-") {
  make_ca(dir_.path().string(), "ca");
  ca_ = path("ca.crt");
  server_ = make_server("server");
}

CertFiles TestCerts::sign(const std::string& name, const std::string& subject, const std::string& extensions,
                          const std::string& ca_name) {
  const std::string d = dir_.path().string();
  {
    std::ofstream ext(d + "/" + name + ".ext");
    ext << extensions;
  }
  openssl("req " + std::string(kNewKey) + " -subj '" + subject + "' -keyout " + d + "/" + name +
          ".key -out " + d + "/" + name + ".csr");
  openssl("x509 -req -in " + d + "/" + name + ".csr -CA " + d + "/" + ca_name + ".crt -CAkey " + d + "/" +
          ca_name + ".key -CAcreateserial -days 2 -extfile " + d + "/" + name + ".ext -out " + d + "/" +
          name + ".crt");
  return {d + "/" + name + ".crt", d + "/" + name + ".key"};
}

CertFiles TestCerts::make_server(const std::string& name) {
  CertFiles files = sign(name, "/CN=localhost",
                         "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
                         "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
                         "ca");
  set_key_mode(files, "644");
  return files;
}

CertFiles TestCerts::make_client(const std::string& common_name) {
  CertFiles files =
      sign("client-" + common_name, "/CN=" + common_name,
           "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n", "ca");
  set_key_mode(files, "600");
  return files;
}

CertFiles TestCerts::make_foreign_client(const std::string& common_name) {
  make_ca(dir_.path().string(), "foreign-ca");
  CertFiles files = sign(
      "foreign-" + common_name, "/CN=" + common_name,
      "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n", "foreign-ca");
  set_key_mode(files, "600");
  return files;
}

std::string TestCerts::fingerprint(const std::string& cert) const {
  std::string out;
  if (run_shell("openssl x509 -noout -fingerprint -sha256 -in " + cert, &out) != 0)
    throw std::runtime_error("openssl x509 -fingerprint failed: " + out);
  auto eq = out.find('=');
  out = eq == std::string::npos ? out : out.substr(eq + 1);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

}  // namespace pgmux::test
