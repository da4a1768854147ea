// Certificates for tests, made fresh at run time (nothing to expire in the
// repo): a test CA, leaf certificates it signs for names or IP addresses,
// and a second, untrusted CA to show that verification really happens.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace oauth_relay::fakes {

struct pem_pair {
  std::string certificate;  // PEM
  std::string private_key;  // PEM (PKCS#8)
};

class test_pki {
 public:
  // A new CA (EC P-256, valid from an hour ago for two days).
  test_pki();
  ~test_pki();
  test_pki(test_pki&&) noexcept;
  test_pki& operator=(test_pki&&) noexcept;

  const std::string& ca_certificate() const { return ca_.certificate; }
  // A server certificate signed by this CA with these subjectAltNames.
  pem_pair issue(const std::vector<std::string>& dns_names,
                 const std::vector<std::string>& ip_addresses) const;
  // Writes the CA certificate (for `ca_file:` keys) and returns the path.
  std::filesystem::path write_ca(const std::filesystem::path& path) const;

 private:
  struct key_holder;
  std::unique_ptr<key_holder> key_;
  pem_pair ca_;
};

}  // namespace oauth_relay::fakes
