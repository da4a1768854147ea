// X.509 with OpenSSL 3: EC keys, a self-signed CA with basicConstraints and
// keyUsage, leaves with subjectAltName and serverAuth.
#include "fakes/test_pki.hpp"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <stdexcept>

namespace oauth_relay::fakes {
namespace {

struct pkey_free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct x509_free {
  void operator()(X509* x) const { X509_free(x); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test_pki: ") + what);
}

pkey_ptr new_key() {
  pkey_ptr key(EVP_EC_gen("P-256"));
  check(key != nullptr, "EVP_EC_gen");
  return key;
}

std::string to_pem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

std::string to_pem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  check(ext != nullptr, "X509V3_EXT_conf_nid");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

x509_ptr new_certificate(EVP_PKEY* key, const std::string& common_name) {
  x509_ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 2 * 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  return cert;
}

}  // namespace

struct test_pki::key_holder {
  pkey_ptr key;
  x509_ptr cert;
};

test_pki::test_pki() : key_(std::make_unique<key_holder>()) {
  key_->key = new_key();
  key_->cert = new_certificate(key_->key.get(), "oauth-relay test CA");
  X509* cert = key_->cert.get();
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  add_extension(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
  add_extension(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  add_extension(cert, cert, NID_subject_key_identifier, "hash");
  check(X509_sign(cert, key_->key.get(), EVP_sha256()) > 0, "sign CA");
  ca_.certificate = to_pem(cert);
  ca_.private_key = to_pem(key_->key.get());
}

test_pki::~test_pki() = default;
test_pki::test_pki(test_pki&&) noexcept = default;
test_pki& test_pki::operator=(test_pki&&) noexcept = default;

pem_pair test_pki::issue(const std::vector<std::string>& dns_names,
                         const std::vector<std::string>& ip_addresses) const {
  auto key = new_key();
  const std::string cn = !dns_names.empty()      ? dns_names.front()
                         : !ip_addresses.empty() ? ip_addresses.front()
                                                 : "no-name";
  auto cert = new_certificate(key.get(), cn);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(key_->cert.get()));
  std::string san;
  // Appended piece by piece: GCC 12 at -O3 warns (-Wrestrict) on the
  // equivalent chain of operator+ temporaries.
  auto add_name = [&san](const char* kind, const std::string& name) {
    if (!san.empty()) san.append(",");
    san.append(kind).append(name);
  };
  for (const auto& d : dns_names) add_name("DNS:", d);
  for (const auto& ip : ip_addresses) add_name("IP:", ip);
  if (!san.empty()) add_extension(cert.get(), key_->cert.get(), NID_subject_alt_name, san);
  add_extension(cert.get(), key_->cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_extension(cert.get(), key_->cert.get(), NID_ext_key_usage, "serverAuth");
  add_extension(cert.get(), key_->cert.get(), NID_authority_key_identifier, "keyid:always");
  check(X509_sign(cert.get(), key_->key.get(), EVP_sha256()) > 0, "sign leaf");
  return {to_pem(cert.get()), to_pem(key.get())};
}

std::filesystem::path test_pki::write_ca(const std::filesystem::path& path) const {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << ca_.certificate;
  return path;
}

}  // namespace oauth_relay::fakes
