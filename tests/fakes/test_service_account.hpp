// A Google service account for tests, its RSA key made fresh at run time (no
// private key in the repo): Google's JSON key file, and the public half the
// token endpoint stand-in verifies assertions with.
#pragma once

#include <filesystem>
#include <string>

namespace oauth_relay::fakes {

struct test_service_account {
  std::string client_email = "relay@test-project.iam.gserviceaccount.com";
  std::string client_id = "104857600000000000001";
  std::string private_key_id = "0123456789abcdef0123456789abcdef01234567";
  std::string private_key_pem;  // PKCS#8, as in Google's key files
  std::string public_key_pem;   // SubjectPublicKeyInfo

  // A new RSA-2048 key (what Google issues for service accounts).
  static test_service_account generate();

  // The key file as Google's Cloud console downloads it, with `token_uri`.
  std::string key_json(const std::string& token_uri) const;
  // Writes it to `path`, mode 0600, and returns the path.
  std::filesystem::path write_key_file(const std::filesystem::path& path,
                                       const std::string& token_uri) const;
};

}  // namespace oauth_relay::fakes
