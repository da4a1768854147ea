// The listener's TLS context: built from the test PKI's certificate and key,
// and every problem named with its file: unreadable, not PEM, an encrypted
// key, a key of another certificate.
#include "relay/smtp/server_tls.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "fakes/test_pki.hpp"

namespace oauth_relay::relay {
namespace {

namespace fs = std::filesystem;

class server_tls_files : public testing::Test {
 protected:
  server_tls_files() {
    std::string pattern = (fs::temp_directory_path() / "server_tls_test.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp";
    dir_ = pattern;
  }
  ~server_tls_files() override { fs::remove_all(dir_); }
  fs::path write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return dir_ / name;
  }
  std::string error_of(const config::tls_settings& tls) {
    try {
      make_server_tls(tls);
    } catch (const tls_config_error& e) {
      return e.what();
    }
    return "<no error>";
  }

  fs::path dir_;
  fakes::test_pki pki_;
};

TEST_F(server_tls_files, loads_a_matching_pair_with_its_chain) {
  const auto pair = pki_.issue({"relay.test"}, {"127.0.0.1"});
  const auto cert = write("cert.pem", pair.certificate + pki_.ca_certificate());
  const auto key = write("key.pem", pair.private_key);
  EXPECT_EQ(error_of({cert, key}), "<no error>");
  const auto ctx = make_server_tls({cert, key});
  EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx->native_handle()), TLS1_2_VERSION);
}

TEST_F(server_tls_files, names_each_problem_and_its_file) {
  const auto pair = pki_.issue({"relay.test"}, {});
  const auto other = pki_.issue({"other.test"}, {});
  const auto cert = write("cert.pem", pair.certificate);
  const auto key = write("key.pem", pair.private_key);
  const auto wrong_key = write("other-key.pem", other.private_key);
  const auto text = write("notes.txt", "not a certificate\n");

  EXPECT_EQ(error_of({dir_ / "missing.pem", key}), "tls.cert_file " +
                                                       (dir_ / "missing.pem").string() +
                                                       ": cannot read: No such file or directory");
  EXPECT_EQ(error_of({text, key}), "tls.cert_file " + text.string() + ": no PEM certificate in it");
  EXPECT_EQ(error_of({cert, text}),
            "tls.key_file " + text.string() + ": no PEM private key in it (or it is encrypted)");
  EXPECT_EQ(error_of({cert, wrong_key}), "tls.key_file " + wrong_key.string() +
                                             ": does not match the certificate in tls.cert_file " +
                                             cert.string());
  // A key file holding the certificate (the two swapped).
  EXPECT_EQ(error_of({key, cert}), "tls.cert_file " + key.string() + ": no PEM certificate in it");
}

TEST_F(server_tls_files, an_encrypted_key_fails_without_asking_for_a_passphrase) {
  const auto pair = pki_.issue({"relay.test"}, {});
  BIO* in = BIO_new_mem_buf(pair.private_key.data(), static_cast<int>(pair.private_key.size()));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(in, nullptr, nullptr, nullptr);
  BIO_free(in);
  ASSERT_NE(pkey, nullptr);
  BIO* out = BIO_new(BIO_s_mem());
  char passphrase[] = "secret";
  ASSERT_EQ(
      PEM_write_bio_PKCS8PrivateKey(out, pkey, EVP_aes_256_cbc(), passphrase, 6, nullptr, nullptr),
      1);
  char* data = nullptr;
  const long size = BIO_get_mem_data(out, &data);
  const auto key = write("encrypted.pem", std::string(data, static_cast<std::size_t>(size)));
  BIO_free(out);
  EVP_PKEY_free(pkey);
  const auto cert = write("cert.pem", pair.certificate);
  EXPECT_EQ(error_of({cert, key}),
            "tls.key_file " + key.string() + ": no PEM private key in it (or it is encrypted)");
}

}  // namespace
}  // namespace oauth_relay::relay
