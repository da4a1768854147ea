// RSA key generation and PEM output with OpenSSL; the JSON in the field
// order and with the fields of a real key file.
#include "fakes/test_service_account.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sys/stat.h>

#include <fstream>
#include <memory>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace oauth_relay::fakes {
namespace {

struct bio_free {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct pkey_free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace

test_service_account test_service_account::generate() {
  std::unique_ptr<EVP_PKEY, pkey_free> key(EVP_RSA_gen(2048));
  if (!key) throw std::runtime_error("EVP_RSA_gen failed");
  std::unique_ptr<BIO, bio_free> priv(BIO_new(BIO_s_mem()));
  std::unique_ptr<BIO, bio_free> pub(BIO_new(BIO_s_mem()));
  if (!priv || !pub ||
      PEM_write_bio_PrivateKey(priv.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1 ||
      PEM_write_bio_PUBKEY(pub.get(), key.get()) != 1) {
    throw std::runtime_error("writing the test RSA key failed");
  }
  test_service_account out;
  out.private_key_pem = bio_text(priv.get());
  out.public_key_pem = bio_text(pub.get());
  return out;
}

std::string test_service_account::key_json(const std::string& token_uri) const {
  const std::string local = client_email.substr(0, client_email.find('@'));
  nlohmann::ordered_json j = {
      {"type", "service_account"},
      {"project_id", "test-project"},
      {"private_key_id", private_key_id},
      {"private_key", private_key_pem},
      {"client_email", client_email},
      {"client_id", client_id},
      {"auth_uri", "https://accounts.google.com/o/oauth2/auth"},
      {"token_uri", token_uri},
      {"auth_provider_x509_cert_url", "https://www.googleapis.com/oauth2/v1/certs"},
      {"client_x509_cert_url", "https://www.googleapis.com/robot/v1/metadata/x509/" + local +
                                   "%40test-project.iam."
                                   "gserviceaccount.com"},
      {"universe_domain", "googleapis.com"}};
  return j.dump(2) + "\n";
}

std::filesystem::path test_service_account::write_key_file(const std::filesystem::path& path,
                                                           const std::string& token_uri) const {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << key_json(token_uri);
    if (!out) throw std::runtime_error("cannot write " + path.string());
  }
  ::chmod(path.c_str(), 0600);
  return path;
}

}  // namespace oauth_relay::fakes
