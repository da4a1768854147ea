// RS256 over OpenSSL's EVP interface: the PEM is read into an EVP_PKEY for
// one signature and freed (OpenSSL clears its key material when it frees it).
#include "auth/jwt_bearer.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/text.hpp"

namespace oauth_relay::auth {
namespace {

struct pkey_free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct md_ctx_free {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct bio_free {
  void operator()(BIO* b) const { BIO_free(b); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;

// Refuses a passphrase: Google's keys have none, and a prompt would hang a daemon.
int no_passphrase(char*, int, int, void*) {
  return 0;
}

// The RSA key of `key`, or nothing with `why` set.
pkey_ptr read_key(const config::service_account_key& key, std::string& why) {
  std::unique_ptr<BIO, bio_free> bio(
      BIO_new_mem_buf(key.private_key.data(), static_cast<int>(key.private_key.size())));
  if (!bio) {
    why = "out of memory";
    return nullptr;
  }
  pkey_ptr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  if (!pkey) {
    why = "its private_key is not a PEM private key OpenSSL can read";
    return nullptr;
  }
  if (EVP_PKEY_get_base_id(pkey.get()) != EVP_PKEY_RSA) {
    why = "its private_key is not an RSA key (RS256 needs one)";
    return nullptr;
  }
  return pkey;
}

}  // namespace

std::string service_account_key_problem(const config::service_account_key& key) {
  std::string why;
  if (read_key(key, why)) return {};
  return escaped(key.file.string()) + ": " + why;
}

std::string make_jwt_assertion(const config::service_account_key& key, std::string_view subject,
                               std::string_view scope, std::int64_t issued_at) {
  const nlohmann::json header = {{"alg", "RS256"}, {"typ", "JWT"}, {"kid", key.private_key_id}};
  const nlohmann::json claims = {
      {"iss", key.client_email}, {"sub", subject},
      {"scope", scope},          {"aud", key.token_uri},
      {"iat", issued_at},        {"exp", issued_at + assertion_lifetime.count()}};
  const std::string signing_input =
      base64url_encode(header.dump()) + "." + base64url_encode(claims.dump());

  std::string why;
  const pkey_ptr pkey = read_key(key, why);
  if (!pkey) throw jwt_signing_error(escaped(key.file.string()) + ": " + why);
  std::unique_ptr<EVP_MD_CTX, md_ctx_free> ctx(EVP_MD_CTX_new());
  std::size_t length = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &length,
                     reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) != 1) {
    throw jwt_signing_error(escaped(key.file.string()) + ": OpenSSL could not sign with its key");
  }
  std::string signature(length, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                     reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) != 1) {
    throw jwt_signing_error(escaped(key.file.string()) + ": OpenSSL could not sign with its key");
  }
  signature.resize(length);
  return signing_input + "." + base64url_encode(signature);
}

}  // namespace oauth_relay::auth
