// The token client against the Microsoft identity platform stand-in over real
// TLS: the refresh asks for SMTP.Send and gets a rotated refresh token, the
// app-only grant, and Microsoft's refusals classified with their AADSTS codes.
#include <curl/curl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "auth/token_client.hpp"
#include "fakes/fake_microsoft.hpp"
#include "oauth_test_support.hpp"

namespace oauth_relay::auth {
namespace {

using testing::HasSubstr;
using testing::StartsWith;

class microsoft_token_client : public testing::Test {
 protected:
  config::settings settings(bool with_secret = true) const {
    config::settings s;
    config::microsoft_settings ms;
    ms.tenant = fake_.tenant();
    ms.client_id = fake_.client_id();
    if (with_secret) ms.client_secret = fake_.client_secret();
    ms.authority = fake_.authority();
    ms.ca_file = ca_file_;
    s.microsoft = ms;
    return s;
  }
  token_client client(bool with_secret = true) const {
    return token_client(
        http_, config::provider_of(settings(with_secret), config::provider_kind::microsoft));
  }

  testing_support::temp_dir dir_;
  fakes::test_pki pki_;
  fakes::fake_microsoft fake_{pki_};
  std::filesystem::path ca_file_ = pki_.write_ca(dir_.path() / "ca.pem");
  std::shared_ptr<http_client> http_ = std::make_shared<curl_http_client>();
};

TEST_F(microsoft_token_client, refresh_asks_for_smtp_send_and_returns_the_rotated_token) {
  fake_.add_account("it@contoso.com", "0.old");
  const auto r = client().refresh("0.old");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_THAT(r.access_token, StartsWith("eyJ0eXAiOiJKV1Qi.fake-ms-"));
  EXPECT_TRUE(fake_.token_valid("it@contoso.com", r.access_token));
  const auto issued = fake_.refresh_tokens_of("it@contoso.com");
  ASSERT_EQ(issued.size(), 2u);
  EXPECT_EQ(r.refresh_token, issued[1]);
  const auto sent = fake_.last_refresh_request();
  EXPECT_EQ(sent.at("grant_type"), "refresh_token");
  EXPECT_EQ(sent.at("scope"), "https://outlook.office.com/SMTP.Send offline_access");
  EXPECT_EQ(sent.at("client_id"), fake_.client_id());
  EXPECT_EQ(sent.at("client_secret"), fake_.client_secret());
  // Microsoft keeps the old refresh token working: a lost answer costs nothing.
  EXPECT_TRUE(client().refresh("0.old").ok());
}

TEST_F(microsoft_token_client, a_public_client_sends_no_secret) {
  fake_.add_account("it@contoso.com", "0.old");
  const auto r = client(/*with_secret=*/false).refresh("0.old");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(fake_.last_refresh_request().count("client_secret"), 0u);
}

TEST_F(microsoft_token_client, client_credentials_get_an_app_token_without_refresh_token) {
  fake_.grant_app_mailbox("alerts@contoso.com");
  const auto r = client().client_credentials();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.refresh_token, "");
  EXPECT_TRUE(fake_.token_valid("alerts@contoso.com", r.access_token));
  EXPECT_FALSE(fake_.token_valid("it@contoso.com", r.access_token));
  const auto sent = fake_.last_token_request();
  EXPECT_EQ(sent.at("grant_type"), "client_credentials");
  EXPECT_EQ(sent.at("scope"), "https://outlook.office365.com/.default");
  EXPECT_EQ(sent.at("client_secret"), fake_.client_secret());
  EXPECT_EQ(fake_.client_credentials_served(), 1u);
}

TEST_F(microsoft_token_client, refusals_keep_their_aadsts_codes) {
  fake_.add_account("it@contoso.com", "0.old");
  fake_.revoke("0.old");
  const auto expired = client().refresh("0.old");
  EXPECT_EQ(expired.failure, token_failure::invalid_grant);
  EXPECT_THAT(expired.oauth_description, StartsWith("AADSTS700082: "));

  config::settings wrong = settings();
  wrong.microsoft->client_secret = "not-the-secret";
  const token_client bad(http_, config::provider_of(wrong, config::provider_kind::microsoft));
  const auto refused = bad.client_credentials();
  EXPECT_EQ(refused.failure, token_failure::invalid_client);
  EXPECT_THAT(refused.oauth_description, StartsWith("AADSTS7000215: "));
  EXPECT_THAT(refused.error, testing::Not(HasSubstr("not-the-secret")));
}

}  // namespace
}  // namespace oauth_relay::auth
