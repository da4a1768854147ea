// Microsoft's and Exchange Online's errors each get their own cause and fix,
// through the same entry points as Google's (explain_token_failure,
// explain_smtp_auth_refusal); Google's answers are not taken for Microsoft's.
#include "auth/microsoft_errors.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace oauth_relay::auth {
namespace {

using testing::HasSubstr;
using testing::StartsWith;

constexpr const char* it = "it@contoso.com";

token_response refused(std::string error, std::string description, long status = 400) {
  token_response r;
  r.failure = token_failure::rejected;
  r.http_status = status;
  r.oauth_error = std::move(error);
  r.oauth_description = std::move(description);
  r.error = "token endpoint refused the request";
  return r;
}

advice token_advice(const token_response& r) {
  config::oauth_settings oauth;
  oauth.token_url = "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token";
  return explain_token_failure(r, oauth_step::refresh, it, oauth);
}

TEST(aadsts_code, reads_the_number_at_the_start) {
  EXPECT_EQ(aadsts_code("AADSTS700082: The refresh token has expired"), 700082);
  EXPECT_EQ(aadsts_code("AADSTS65001: The user or administrator has not consented"), 65001);
  EXPECT_EQ(aadsts_code("Token has been expired or revoked."), std::nullopt);
  EXPECT_EQ(aadsts_code("AADSTS: nothing"), std::nullopt);
  EXPECT_EQ(aadsts_code(""), std::nullopt);
}

TEST(microsoft_errors, consent_missing_aadsts65001) {
  const auto a = token_advice(refused("invalid_grant",
                                      "AADSTS65001: The user or administrator has not consented "
                                      "to use the application."));
  EXPECT_THAT(a.cause, StartsWith("Microsoft says nobody has consented to the app's permissions "
                                  "for it@contoso.com (AADSTS65001: "));
  EXPECT_THAT(a.fix, HasSubstr("Grant admin consent"));
  EXPECT_THAT(a.fix, HasSubstr("oauth-relayctl authorize it@contoso.com"));
}

TEST(microsoft_errors, mfa_required_aadsts50076) {
  const auto a =
      token_advice(refused("invalid_grant",
                           "AADSTS50076: Due to a configuration change made by your administrator, "
                           "you must use multi-factor authentication to access the resource."));
  EXPECT_THAT(a.cause, StartsWith("Microsoft wants multi-factor authentication for "
                                  "it@contoso.com before it issues a token (AADSTS50076: "));
  EXPECT_EQ(a.fix,
            "run oauth-relayctl authorize it@contoso.com (or with --device) and complete the "
            "MFA prompt");
}

TEST(microsoft_errors, expired_refresh_token_aadsts700082) {
  const auto a = token_advice(
      refused("invalid_grant", "AADSTS700082: The refresh token has expired due to inactivity."));
  EXPECT_EQ(a.cause,
            "Microsoft refused the refresh token of it@contoso.com: it expired (unused for 90 "
            "days) or was revoked (AADSTS700082: The refresh token has expired due to "
            "inactivity.)");
  EXPECT_EQ(a.fix, "run oauth-relayctl authorize it@contoso.com to get a new one");
}

TEST(microsoft_errors, wrong_client_secret_aadsts7000215) {
  const auto a = token_advice(
      refused("invalid_client", "AADSTS7000215: Invalid client secret provided.", 401));
  EXPECT_EQ(a.cause,
            "Microsoft refused the app's client secret (AADSTS7000215: Invalid client secret "
            "provided.)");
  EXPECT_THAT(a.fix, HasSubstr("Value (not its Secret ID)"));
  EXPECT_THAT(a.fix, HasSubstr("providers.microsoft.client_secret_file"));
}

TEST(microsoft_errors, googles_answers_stay_googles) {
  const auto a = token_advice(refused("invalid_grant", "Token has been expired or revoked."));
  EXPECT_THAT(a.cause, testing::Not(HasSubstr("Microsoft")));
  EXPECT_EQ(explain_microsoft_token_error(refused("invalid_grant", "AADSTS1: unknown"), it),
            std::nullopt);
}

TEST(exchange_errors, smtp_auth_disabled_535_5_7_139) {
  const auto a = explain_smtp_auth_refusal(
      535, "5.7.139",
      "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox.", it,
      "smtp.office365.com");
  EXPECT_EQ(a.cause,
            "Exchange Online has SMTP AUTH turned off for it@contoso.com or its organization "
            "(535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled "
            "for the Mailbox.)");
  EXPECT_THAT(a.fix, HasSubstr("Set-CASMailbox -Identity it@contoso.com "
                               "-SmtpClientAuthenticationDisabled $false"));
}

TEST(exchange_errors, token_refused_535_5_7_3) {
  const auto a = explain_smtp_auth_refusal(535, "5.7.3", "Authentication unsuccessful", it,
                                           "smtp.office365.com");
  EXPECT_EQ(a.cause,
            "Exchange Online refused the access token of it@contoso.com (535 5.7.3 "
            "Authentication unsuccessful)");
  EXPECT_THAT(a.fix, HasSubstr("SMTP.Send"));
  EXPECT_THAT(a.fix, HasSubstr("SMTP.SendAsApp"));
}

TEST(exchange_errors, send_as_denied_554_5_2_252) {
  const auto a = explain_exchange_reply(
      554, "5.2.252", "SendAsDenied; it@contoso.com not allowed to send as boss@contoso.com", it);
  ASSERT_TRUE(a);
  EXPECT_THAT(a->cause, StartsWith("Exchange Online refused to send as this sender from "
                                   "it@contoso.com (SendAsDenied: 554 5.2.252 "));
  EXPECT_THAT(a->fix, HasSubstr("Send As"));
  // Gmail's 535 5.7.8 keeps Gmail's advice.
  EXPECT_EQ(explain_exchange_reply(535, "5.7.8", "Username and Password not accepted", it),
            std::nullopt);
  EXPECT_THAT(explain_smtp_auth_refusal(535, "5.7.8", "Username and Password not accepted", it,
                                        "smtp.gmail.com")
                  .fix,
              HasSubstr("https://mail.google.com/"));
}

}  // namespace
}  // namespace oauth_relay::auth
