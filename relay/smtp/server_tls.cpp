// Reads both PEM files itself (rather than SSL_CTX_use_*_file) so that each
// failure can say which file and why, and so that an encrypted key fails at
// once instead of OpenSSL asking for a passphrase on a terminal.
#include "relay/smtp/server_tls.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstring>

#include "common/secret.hpp"
#include "common/text.hpp"
#include "config/yaml_reader.hpp"

namespace oauth_relay::relay {
namespace {

struct bio_deleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct x509_deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct pkey_deleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using bio_ptr = std::unique_ptr<BIO, bio_deleter>;
using x509_ptr = std::unique_ptr<X509, x509_deleter>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;

[[noreturn]] void fail(const char* key, const std::filesystem::path& path,
                       const std::string& problem) {
  ERR_clear_error();
  throw tls_config_error(std::string("tls.") + key + " " + escaped(path.string()) + ": " + problem);
}

std::string read_pem(const char* key, const std::filesystem::path& path) {
  auto contents = config::read_file(path);
  if (contents.error != 0)
    fail(key, path, std::string("cannot read: ") + std::strerror(contents.error));
  return std::move(contents.text);
}

// A passphrase callback that has none: an encrypted key fails to load.
int no_passphrase(char*, int, int, void*) {
  return 0;
}

}  // namespace

std::shared_ptr<boost::asio::ssl::context> make_server_tls(const config::tls_settings& tls) {
  namespace ssl = boost::asio::ssl;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_compression |
                   SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);

  const std::string certificates = read_pem("cert_file", tls.cert_file);
  bio_ptr cert_bio(BIO_new_mem_buf(certificates.data(), static_cast<int>(certificates.size())));
  x509_ptr leaf(PEM_read_bio_X509_AUX(cert_bio.get(), nullptr, no_passphrase, nullptr));
  if (!leaf) fail("cert_file", tls.cert_file, "no PEM certificate in it");
  if (SSL_CTX_use_certificate(native, leaf.get()) != 1) {
    fail("cert_file", tls.cert_file, "OpenSSL refuses the certificate");
  }
  // The rest of the file is the chain up to (not necessarily including) the root.
  while (x509_ptr next{PEM_read_bio_X509(cert_bio.get(), nullptr, no_passphrase, nullptr)}) {
    if (SSL_CTX_add1_chain_cert(native, next.get()) != 1) {
      fail("cert_file", tls.cert_file, "OpenSSL refuses a certificate of the chain");
    }
  }

  std::string key_text = read_pem("key_file", tls.key_file);
  bio_ptr key_bio(BIO_new_mem_buf(key_text.data(), static_cast<int>(key_text.size())));
  pkey_ptr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, no_passphrase, nullptr));
  key_bio.reset();
  wipe(key_text);
  if (!key) fail("key_file", tls.key_file, "no PEM private key in it (or it is encrypted)");
  if (X509_check_private_key(leaf.get(), key.get()) != 1) {
    fail("key_file", tls.key_file,
         "does not match the certificate in tls.cert_file " + escaped(tls.cert_file.string()));
  }
  if (SSL_CTX_use_PrivateKey(native, key.get()) != 1) {
    fail("key_file", tls.key_file, "OpenSSL refuses the key");
  }
  return ctx;
}

}  // namespace oauth_relay::relay
