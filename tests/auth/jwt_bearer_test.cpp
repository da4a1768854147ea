// The service account's JWT bearer grant: the assertion decoded and its
// signature verified with the public half of a key made for the test; the
// token client against the stand-in endpoint (which checks the same over real
// TLS); and the hints for each refusal.
#include "auth/jwt_bearer.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "auth/consent.hpp"
#include "auth/oauth_errors.hpp"
#include "auth/token_client.hpp"
#include "common/clock.hpp"
#include "common/text.hpp"
#include "fakes/test_service_account.hpp"
#include "oauth_test_support.hpp"

namespace oauth_relay::auth {
namespace {

using testing::HasSubstr;
using testing::Not;
using testing::StartsWith;

constexpr const char* alice = "alice@example.com";

// One key for the whole file: RSA generation takes a moment.
const fakes::test_service_account& test_account() {
  static const auto account = fakes::test_service_account::generate();
  return account;
}

config::service_account_key key_for(const std::string& token_uri) {
  const auto& t = test_account();
  config::service_account_key key;
  key.file = "/etc/oauth-relay/sa.json";
  key.client_email = t.client_email;
  key.client_id = t.client_id;
  key.private_key_id = t.private_key_id;
  key.token_uri = token_uri;
  key.private_key = t.private_key_pem;
  return key;
}

struct decoded {
  nlohmann::json header, claims;
  std::string signing_input, signature;
};

decoded decode(const std::string& jwt) {
  const auto first = jwt.find('.');
  const auto second = jwt.find('.', first + 1);
  EXPECT_NE(second, std::string::npos);
  EXPECT_EQ(jwt.find('.', second + 1), std::string::npos) << "three parts";
  decoded d;
  d.header = nlohmann::json::parse(base64url_decode(jwt.substr(0, first)).value());
  d.claims =
      nlohmann::json::parse(base64url_decode(jwt.substr(first + 1, second - first - 1)).value());
  d.signing_input = jwt.substr(0, second);
  d.signature = base64url_decode(jwt.substr(second + 1)).value();
  return d;
}

bool verifies(const std::string& public_pem, const std::string& input, const std::string& sig) {
  BIO* bio = BIO_new_mem_buf(public_pem.data(), static_cast<int>(public_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok =
      key && EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  return ok;
}

TEST(jwt_bearer, assertion_has_the_header_and_claims_google_checks) {
  const auto key = key_for("https://oauth2.googleapis.com/token");
  const auto jwt = make_jwt_assertion(key, alice, mail_scope, 1796025600);
  const auto d = decode(jwt);
  EXPECT_EQ(
      d.header,
      nlohmann::json({{"alg", "RS256"}, {"typ", "JWT"}, {"kid", test_account().private_key_id}}));
  EXPECT_EQ(d.claims, nlohmann::json({{"iss", test_account().client_email},
                                      {"sub", alice},
                                      {"scope", "https://mail.google.com/"},
                                      {"aud", "https://oauth2.googleapis.com/token"},
                                      {"iat", 1796025600},
                                      {"exp", 1796025600 + 3600}}));
  EXPECT_EQ(d.signature.size(), 256u);  // RSA-2048
  EXPECT_TRUE(verifies(test_account().public_key_pem, d.signing_input, d.signature));
  // base64url without padding (RFC 7515 §2).
  EXPECT_EQ(jwt.find_first_of("+/="), std::string::npos);
}

TEST(jwt_bearer, signature_covers_the_claims_and_needs_the_key) {
  const auto key = key_for("https://oauth2.googleapis.com/token");
  const auto d = decode(make_jwt_assertion(key, alice, mail_scope, 1796025600));
  const auto other = decode(make_jwt_assertion(key, "bob@example.com", mail_scope, 1796025600));
  EXPECT_FALSE(verifies(test_account().public_key_pem, other.signing_input, d.signature));
  const auto stranger = fakes::test_service_account::generate();
  EXPECT_FALSE(verifies(stranger.public_key_pem, d.signing_input, d.signature));
}

TEST(jwt_bearer, a_key_openssl_cannot_use_is_refused_naming_the_file_not_the_key) {
  auto key = key_for("https://oauth2.googleapis.com/token");
  EXPECT_EQ(service_account_key_problem(key), "");
  key.private_key =
      "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
  EXPECT_EQ(service_account_key_problem(key),
            "/etc/oauth-relay/sa.json: its private_key is not a PEM private key OpenSSL can read");
  try {
    make_jwt_assertion(key, alice, mail_scope, 1796025600);
    ADD_FAILURE() << "signed with a broken key";
  } catch (const jwt_signing_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "/etc/oauth-relay/sa.json: its private_key is not a PEM private key OpenSSL can "
              "read");
  }
  // An EC key is a key, but not one RS256 signs with.
  EVP_PKEY* ec = EVP_EC_gen("P-256");
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, ec, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  key.private_key = std::string(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  EVP_PKEY_free(ec);
  EXPECT_EQ(service_account_key_problem(key),
            "/etc/oauth-relay/sa.json: its private_key is not an RSA key (RS256 needs one)");
}

// ---------------------------------------------------------------- the grant, over TLS

class jwt_bearer_grant : public testing::Test {
 protected:
  jwt_bearer_grant() {
    const auto& t = test_account();
    env_.fake.add_service_account(t.client_email, t.client_id, t.private_key_id, t.public_key_pem);
  }
  token_response ask(const std::string& mailbox, std::string_view scope = mail_scope) {
    const auto key = key_for(env_.fake.token_url());
    const token_client client(std::make_shared<curl_http_client>(), env_.settings().oauth);
    return client.jwt_bearer(make_jwt_assertion(key, mailbox, scope, now_seconds()), key.token_uri);
  }
  testing_support::oauth_env env_;
};

TEST_F(jwt_bearer_grant, delegated_mailbox_gets_a_token_for_itself) {
  env_.fake.delegate(test_account().client_id, "example.com", "https://mail.google.com/");
  const auto r = ask(alice);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_THAT(std::string(r.access_token), StartsWith("ya29.fake-"));
  EXPECT_EQ(r.expires_in, std::chrono::seconds(3599));
  EXPECT_TRUE(env_.fake.token_valid(alice, r.access_token));
  EXPECT_FALSE(env_.fake.token_valid("bob@example.com", r.access_token));
  const auto sent = env_.fake.last_token_request();
  EXPECT_EQ(sent.at("grant_type"), "urn:ietf:params:oauth:grant-type:jwt-bearer");
  EXPECT_EQ(sent.count("client_secret"), 0u);  // the assertion is the whole credential
  EXPECT_EQ(sent.count("client_id"), 0u);
  EXPECT_EQ(env_.fake.assertion_subjects(), std::vector<std::string>{alice});
}

TEST_F(jwt_bearer_grant, no_delegation_is_not_delegated_with_the_admin_console_hint) {
  const auto r = ask(alice);
  EXPECT_EQ(r.failure, token_failure::not_delegated);
  EXPECT_EQ(r.oauth_error, "unauthorized_client");
  EXPECT_EQ(env_.fake.last_assertion_error(),
            "unauthorized_client: Client is unauthorized to retrieve access tokens using this "
            "method, or client not authorized for any of the scopes requested.");
  const auto why = explain_service_account_failure(r, alice, key_for(env_.fake.token_url()), {});
  EXPECT_EQ(why.cause, "Google refused the service account " + test_account().client_email +
                           " a token for alice@example.com (unauthorized_client): domain-wide "
                           "delegation is not granted to its client ID 104857600000000000001 "
                           "for the scope https://mail.google.com/");
  EXPECT_EQ(why.fix,
            "a Google Workspace super administrator must, in the Admin console "
            "(admin.google.com) > Security > API controls > Domain-wide delegation, add (or "
            "edit) the client ID 104857600000000000001 with the OAuth scope "
            "https://mail.google.com/ (it can take some minutes to apply), then run: "
            "oauth-relayctl test alice@example.com");
  // Delegated for another scope only: the same refusal.
  env_.fake.delegate(test_account().client_id, "example.com",
                     "https://www.googleapis.com/auth/gmail.send");
  EXPECT_EQ(ask(alice).failure, token_failure::not_delegated);
}

TEST_F(jwt_bearer_grant, a_key_google_does_not_know_is_invalid_grant) {
  env_.fake.delegate(test_account().client_id, "example.com", "https://mail.google.com/");
  auto key = key_for(env_.fake.token_url());
  key.private_key = fakes::test_service_account::generate().private_key_pem;
  const token_client client(std::make_shared<curl_http_client>(), env_.settings().oauth);
  const auto r =
      client.jwt_bearer(make_jwt_assertion(key, alice, mail_scope, now_seconds()), key.token_uri);
  EXPECT_EQ(r.failure, token_failure::invalid_grant);
  EXPECT_EQ(r.error,
            "token endpoint refused the service account's assertion: invalid_grant (Invalid JWT "
            "Signature.), HTTP 400");
  const auto why = explain_service_account_failure(r, alice, key, {});
  EXPECT_THAT(why.cause,
              HasSubstr("its key " + test_account().private_key_id + " was deleted or disabled"));
  EXPECT_THAT(why.fix, HasSubstr("Keys > Add key"));
}

TEST_F(jwt_bearer_grant, the_endpoint_checks_aud_and_time) {
  env_.fake.delegate(test_account().client_id, "example.com", "https://mail.google.com/");
  const token_client client(std::make_shared<curl_http_client>(), env_.settings().oauth);
  // An assertion for Google's real endpoint is not one for this one.
  const auto elsewhere = key_for("https://oauth2.googleapis.com/token");
  auto r = client.jwt_bearer(make_jwt_assertion(elsewhere, alice, mail_scope, now_seconds()),
                             env_.fake.token_url());
  EXPECT_EQ(r.failure, token_failure::invalid_grant);
  EXPECT_EQ(env_.fake.last_assertion_error(),
            "invalid_grant: Invalid JWT: aud is not the token endpoint");
  // Two hours old: expired an hour ago.
  const auto key = key_for(env_.fake.token_url());
  r = client.jwt_bearer(make_jwt_assertion(key, alice, mail_scope, now_seconds() - 7200),
                        key.token_uri);
  EXPECT_EQ(r.failure, token_failure::invalid_grant);
  const auto why = explain_service_account_failure(r, alice, key, {});
  EXPECT_THAT(why.cause, HasSubstr("this host's clock is wrong"));
  EXPECT_THAT(why.fix, StartsWith("synchronise the clock"));
  EXPECT_EQ(env_.fake.assertions_accepted(), 0u);
}

TEST_F(jwt_bearer_grant, an_assertion_never_appears_in_an_error) {
  env_.fake.fail_with_503(true);
  const auto key = key_for(env_.fake.token_url());
  const std::string assertion = make_jwt_assertion(key, alice, mail_scope, now_seconds());
  const token_client client(std::make_shared<curl_http_client>(), env_.settings().oauth);
  const auto r = client.jwt_bearer(assertion, key.token_uri);
  EXPECT_EQ(r.failure, token_failure::temporary);
  EXPECT_THAT(r.error, Not(HasSubstr(assertion.substr(assertion.rfind('.') + 1))));
}

// ---------------------------------------------------------------- hints alone

token_response refused(const std::string& error, const std::string& description) {
  token_response r;
  r.http_status = 400;
  r.failure = token_failure::rejected;
  r.oauth_error = error;
  r.oauth_description = description;
  r.error = "token endpoint refused the request";
  return r;
}

TEST(service_account_hints, each_refusal_names_its_own_fix) {
  const auto key = key_for("https://oauth2.googleapis.com/token");
  const auto access_denied =
      explain_service_account_failure(refused("access_denied", ""), alice, key, {});
  EXPECT_THAT(access_denied.cause, HasSubstr("(access_denied): domain-wide delegation is not "
                                             "granted to its client ID 104857600000000000001"));
  EXPECT_THAT(access_denied.fix, HasSubstr("Security > API controls > Domain-wide delegation"));

  const auto scope = explain_service_account_failure(refused("invalid_scope", ""), alice, key, {});
  EXPECT_EQ(scope.cause,
            "Google refused the scope https://mail.google.com/ for the service "
            "account " +
                test_account().client_email + " and alice@example.com (invalid_scope)");
  EXPECT_EQ(scope.fix,
            "in the Admin console (admin.google.com) > Security > API controls > Domain-wide "
            "delegation, the entry for client ID 104857600000000000001 must list the scope "
            "https://mail.google.com/ exactly (with the trailing slash); then run: "
            "oauth-relayctl test alice@example.com");

  const auto user = explain_service_account_failure(
      refused("invalid_grant", "Invalid email or User ID"), "nobody@example.com", key, {});
  EXPECT_EQ(user.cause,
            "Google does not know the mailbox nobody@example.com in the domain of the service "
            "account " +
                test_account().client_email + " (invalid_grant: Invalid email or User ID)");

  const auto gone = explain_service_account_failure(
      refused("invalid_client", "The OAuth client was not found."), alice, key, {});
  EXPECT_THAT(gone.cause, HasSubstr("(invalid_client): it was deleted or disabled"));

  token_response unreachable;
  unreachable.failure = token_failure::temporary;
  unreachable.error = "token endpoint unreachable: Could not resolve host: oauth2.googleapis.com";
  const auto dns = explain_service_account_failure(unreachable, alice, key, {});
  EXPECT_EQ(dns.cause, "cannot resolve oauth2.googleapis.com");
  EXPECT_THAT(dns.fix, StartsWith("check token_uri in /etc/oauth-relay/sa.json"));
}

}  // namespace
}  // namespace oauth_relay::auth
