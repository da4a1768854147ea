// Every answer of Google's that oauth-relayctl explains, with the exact cause
// and fix an administrator reads (README.md quotes them).
#include "auth/oauth_errors.hpp"

#include <gtest/gtest.h>

namespace oauth_relay::auth {
namespace {

constexpr const char* alice = "alice@example.com";

TEST(oauth_errors, invalid_grant_on_refresh_names_testing_and_the_command) {
  const auto a = explain_oauth_error("invalid_grant", "Token has been expired or revoked.",
                                     oauth_step::refresh, alice);
  EXPECT_EQ(a.cause,
            "Google refused the refresh token of alice@example.com (invalid_grant): it was "
            "revoked, or it expired after 7 days because the OAuth consent screen is in Testing");
  EXPECT_EQ(a.fix,
            "publish the consent screen (Google Auth Platform > Audience > Publish app: In "
            "production), then run: oauth-relayctl authorize alice@example.com");
}

TEST(oauth_errors, invalid_grant_on_code_exchange_is_about_the_code) {
  const auto a = explain_oauth_error("invalid_grant", "", oauth_step::code_exchange, alice);
  EXPECT_EQ(a.cause,
            "Google refused the authorization code (invalid_grant): it expired, was already used, "
            "or does not match this request's PKCE verifier");
  EXPECT_EQ(a.fix,
            "run oauth-relayctl authorize alice@example.com again and finish the consent within a "
            "few minutes");
}

TEST(oauth_errors, access_denied_names_test_users_and_cancel) {
  const auto a = explain_oauth_error("access_denied", "", oauth_step::consent, alice);
  EXPECT_EQ(a.cause,
            "the consent was refused (access_denied): alice@example.com is not a test user of the "
            "OAuth consent screen, or Cancel was clicked");
  EXPECT_EQ(a.fix,
            "add alice@example.com under Google Auth Platform > Audience > Test users (or publish "
            "the app), then run oauth-relayctl authorize alice@example.com and click Continue");
}

TEST(oauth_errors, redirect_uri_mismatch_means_not_a_desktop_client) {
  const auto a = explain_oauth_error("redirect_uri_mismatch", "", oauth_step::consent, alice);
  EXPECT_EQ(a.cause,
            "Google refused the loopback redirect (redirect_uri_mismatch): the OAuth client is not "
            "a \"Desktop app\" client");
  EXPECT_EQ(a.fix,
            "create an OAuth client of type Desktop app (Google Auth Platform > Clients > Create "
            "client) and put its client ID and secret in oauth.client_id and "
            "oauth.client_secret_file");
}

TEST(oauth_errors, invalid_client_points_at_the_config_keys) {
  const auto a = explain_oauth_error("invalid_client", "Unauthorized", oauth_step::refresh, alice);
  EXPECT_EQ(a.cause,
            "Google does not know this OAuth client (invalid_client): oauth.client_id or the "
            "client secret is wrong, or the client was deleted");
  EXPECT_EQ(a.fix,
            "copy the client ID and secret of the Desktop app client from Google Auth Platform > "
            "Clients into oauth.client_id and oauth.client_secret_file");
}

TEST(oauth_errors, invalid_scope_unauthorized_client_and_workspace_errors) {
  auto a = explain_oauth_error("invalid_scope", "", oauth_step::consent, alice);
  EXPECT_EQ(a.cause,
            "Google refused the scopes https://mail.google.com/ openid email (invalid_scope)");
  EXPECT_NE(a.fix.find("Admin console > Security > API controls"), std::string::npos);
  a = explain_oauth_error("unauthorized_client", "", oauth_step::refresh, alice);
  EXPECT_EQ(a.cause,
            "the OAuth client may not do this (unauthorized_client): the refresh token of "
            "alice@example.com was issued to another client ID, or the client is not a Desktop "
            "app client");
  EXPECT_EQ(a.fix,
            "check oauth.client_id (a Desktop app client), then run: oauth-relayctl authorize "
            "alice@example.com");
  a = explain_oauth_error("org_internal", "", oauth_step::consent, alice);
  EXPECT_EQ(a.cause,
            "the OAuth consent screen is Internal and alice@example.com is not in its Google "
            "Workspace organization (org_internal)");
  a = explain_oauth_error("admin_policy_enforced", "", oauth_step::consent, alice);
  EXPECT_NE(a.cause.find("administrator's policy"), std::string::npos);
}

TEST(oauth_errors, unknown_codes_are_named_with_their_description) {
  const auto a =
      explain_oauth_error("temporarily_unavailable", "try later", oauth_step::consent, alice);
  EXPECT_EQ(a.cause, "Google answered temporarily_unavailable (try later)");
  EXPECT_EQ(a.fix,
            "check the OAuth client and consent screen in Google Cloud console, then run: "
            "oauth-relayctl authorize alice@example.com");
}

TEST(oauth_errors, smtp_535_is_another_account_or_a_missing_scope) {
  const auto a = explain_smtp_auth_refusal(535, "5.7.8", "Username and Password not accepted.",
                                           alice, "smtp.gmail.com");
  EXPECT_EQ(a.cause,
            "smtp.gmail.com refused the access token of alice@example.com (535 5.7.8 Username "
            "and Password not accepted.)");
  EXPECT_EQ(a.fix,
            "the token belongs to another Google account or lacks the scope "
            "https://mail.google.com/: run oauth-relayctl authorize alice@example.com, sign in as "
            "alice@example.com and leave the Gmail permission ticked");
}

TEST(oauth_errors, smtp_4xx_is_temporary_and_other_5xx_names_the_host) {
  auto a =
      explain_smtp_auth_refusal(454, "4.7.0", "Too many login attempts", alice, "smtp.gmail.com");
  EXPECT_EQ(a.cause,
            "smtp.gmail.com cannot authenticate alice@example.com right now (454 4.7.0 Too many "
            "login attempts)");
  EXPECT_EQ(a.fix, "a temporary refusal: try again later (oauth-relayd retries by itself)");
  a = explain_smtp_auth_refusal(504, "5.7.4", "Unrecognized authentication type", alice,
                                "mail.example.com");
  EXPECT_EQ(a.cause,
            "mail.example.com refused AUTH XOAUTH2 for alice@example.com (504 5.7.4 Unrecognized "
            "authentication type)");
}

endpoint upstream(std::optional<std::filesystem::path> ca = std::nullopt) {
  config::upstream_settings s;
  s.host = "smtp.gmail.com";
  s.port = 587;
  s.ca_file = std::move(ca);
  return upstream_endpoint(s);
}

TEST(oauth_errors, unknown_ca_without_ca_file_names_host_and_key) {
  const auto a = explain_transport_failure(
      upstream(),
      "TLS handshake with smtp.gmail.com port 587 failed: certificate verify failed: "
      "unable to get local issuer certificate");
  EXPECT_EQ(a.cause,
            "the TLS certificate of smtp.gmail.com:587 is not trusted (unable to get local issuer "
            "certificate)");
  EXPECT_EQ(a.fix,
            "upstream.ca_file is not set, so only the system's trusted CAs (/etc/ssl/certs) are "
            "used: update ca-certificates, or if a proxy intercepts TLS set upstream.ca_file to "
            "its CA certificate");
}

TEST(oauth_errors, unknown_ca_with_ca_file_names_the_file) {
  const auto a = explain_transport_failure(upstream("/etc/oauth-relay/proxy-ca.pem"),
                                           "certificate verify failed: self-signed certificate "
                                           "in certificate chain");
  EXPECT_EQ(a.cause,
            "the TLS certificate of smtp.gmail.com:587 is not trusted (self-signed certificate in "
            "certificate chain)");
  EXPECT_EQ(a.fix,
            "only the system's trusted CAs and upstream.ca_file (/etc/oauth-relay/proxy-ca.pem) "
            "are trusted: if a proxy intercepts TLS, that file must hold its CA certificate; "
            "otherwise update ca-certificates");
}

TEST(oauth_errors, curl_certificate_problem_on_the_token_endpoint) {
  config::oauth_settings oauth;
  oauth.token_url = "https://oauth2.googleapis.com/token";
  const auto a = explain_transport_failure(
      token_endpoint(oauth), "SSL certificate problem: unable to get local issuer certificate");
  EXPECT_EQ(a.cause,
            "the TLS certificate of oauth2.googleapis.com:443 is not trusted (unable to get local "
            "issuer certificate)");
  EXPECT_NE(a.fix.find("oauth.ca_file is not set"), std::string::npos) << a.fix;
}

TEST(oauth_errors, certificate_for_another_name) {
  const auto a =
      explain_transport_failure(upstream(), "certificate verify failed: hostname mismatch");
  EXPECT_EQ(a.cause,
            "the TLS certificate of smtp.gmail.com:587 is not issued for smtp.gmail.com "
            "(hostname mismatch)");
  EXPECT_EQ(a.fix,
            "check upstream.host and upstream.port: the name must be the one in the server's "
            "certificate (Gmail: smtp.gmail.com)");
}

TEST(oauth_errors, connection_refused_names_host_port_and_firewall) {
  auto a = explain_transport_failure(upstream(),
                                     "cannot connect to 127.0.0.1 port 587: Connection refused");
  EXPECT_EQ(a.cause, "cannot connect to smtp.gmail.com:587: connection refused");
  EXPECT_EQ(a.fix,
            "nothing accepts connections there: check upstream.host and upstream.port, and that "
            "no local firewall rejects outgoing connections to port 587");
  // curl's wording for the same thing.
  config::oauth_settings oauth;
  oauth.token_url = "https://127.0.0.1:8443/token";
  a = explain_transport_failure(
      token_endpoint(oauth),
      "Failed to connect to 127.0.0.1 port 8443 after 0 ms: Couldn't connect to server");
  EXPECT_EQ(a.cause, "cannot connect to 127.0.0.1:8443: connection refused");
}

TEST(oauth_errors, timeout_points_at_a_firewall_or_proxy) {
  const auto a =
      explain_transport_failure(upstream(), "timed out connecting to 142.250.1.108 port 587");
  EXPECT_EQ(a.cause, "no answer from smtp.gmail.com:587 (timed out)");
  EXPECT_EQ(a.fix,
            "a firewall or proxy drops outgoing connections to port 587: allow them (some hosting "
            "providers block SMTP ports), or check upstream.host and upstream.port");
}

TEST(oauth_errors, name_resolution_and_other_tls_failures) {
  auto a = explain_transport_failure(upstream(), "cannot resolve smtp.gmail.com: Host not found");
  EXPECT_EQ(a.cause, "cannot resolve smtp.gmail.com");
  a = explain_transport_failure(
      upstream(), "TLS handshake with smtp.gmail.com port 587 failed: wrong version number");
  EXPECT_EQ(a.cause,
            "the TLS handshake with smtp.gmail.com:587 failed (TLS handshake with smtp.gmail.com "
            "port 587 failed: wrong version number)");
  EXPECT_NE(a.fix.find("upstream.tls"), std::string::npos);
}

TEST(oauth_errors, token_endpoint_parsed_from_the_url) {
  config::oauth_settings oauth;
  oauth.token_url = "https://[::1]:9443/token?x=1";
  auto e = token_endpoint(oauth);
  EXPECT_EQ(e.host, "::1");
  EXPECT_EQ(e.port, 9443);
  oauth.token_url = "https://oauth2.googleapis.com/token";
  e = token_endpoint(oauth);
  EXPECT_EQ(e.host, "oauth2.googleapis.com");
  EXPECT_EQ(e.port, 443);
  EXPECT_EQ(e.address_keys, "oauth.token_url");
}

TEST(oauth_errors, token_failures_are_routed_by_kind) {
  config::oauth_settings oauth;
  oauth.token_url = "https://oauth2.googleapis.com/token";
  token_response r;
  r.failure = token_failure::invalid_grant;
  r.http_status = 400;
  r.oauth_error = "invalid_grant";
  r.oauth_description = "Token has been expired or revoked.";
  EXPECT_NE(explain_token_failure(r, oauth_step::refresh, alice, oauth).cause.find("7 days"),
            std::string::npos);

  token_response down;
  down.failure = token_failure::temporary;
  down.error = "token endpoint unreachable: Could not resolve host: oauth2.googleapis.com";
  EXPECT_EQ(explain_token_failure(down, oauth_step::refresh, alice, oauth).cause,
            "cannot resolve oauth2.googleapis.com");

  token_response busy;
  busy.failure = token_failure::temporary;
  busy.http_status = 503;
  busy.error = "token endpoint answered HTTP 503";
  const auto a = explain_token_failure(busy, oauth_step::refresh, alice, oauth);
  EXPECT_EQ(a.cause, "the token endpoint https://oauth2.googleapis.com/token answered HTTP 503");
  EXPECT_EQ(a.fix,
            "Google's side is failing or throttling: try again in a few minutes (oauth-relayd "
            "retries by itself)");

  token_response no_refresh;
  no_refresh.failure = token_failure::rejected;
  no_refresh.http_status = 200;
  no_refresh.error =
      "token endpoint issued no refresh token (the consent must ask for access_type=offline)";
  EXPECT_EQ(explain_token_failure(no_refresh, oauth_step::code_exchange, alice, oauth).cause,
            "Google issued no refresh token");
}

TEST(oauth_errors, invalid_grant_about_seven_days_after_consent_is_the_testing_status_first) {
  constexpr std::int64_t day = 86400;
  constexpr std::int64_t consent = 1796025600;
  const auto week = explain_refresh_refusal("alice@example.com", consent, consent + 7 * day + 60);
  EXPECT_EQ(week.cause,
            "Google refused the refresh token of alice@example.com (invalid_grant) 7 days after "
            "it was authorized: the OAuth consent screen is in Testing, where refresh tokens "
            "expire after 7 days");
  EXPECT_EQ(week.fix,
            "publish the consent screen (Google Auth Platform > Audience > Publish app: In "
            "production), then run: oauth-relayctl authorize alice@example.com");
  // The last refresh before the expiry may be up to an hour earlier; later is still it.
  EXPECT_EQ(explain_refresh_refusal("alice@example.com", consent, consent + 7 * day - 1800).fix,
            week.fix);
  EXPECT_EQ(explain_refresh_refusal("alice@example.com", consent, consent + 12 * day).fix,
            week.fix);
  const auto early = explain_refresh_refusal("alice@example.com", consent, consent + 2 * day);
  EXPECT_EQ(early.cause,
            "Google refused the refresh token of alice@example.com (invalid_grant) 2 days after "
            "it was authorized, too soon for the 7 days of a consent screen in Testing: it was "
            "revoked (by the user at myaccount.google.com > Security, a password change, or an "
            "administrator)");
  EXPECT_EQ(early.fix, "run: oauth-relayctl authorize alice@example.com");
  // Unknown: both causes, Testing's fix first, as explain_oauth_error says it.
  const auto unknown = explain_refresh_refusal("alice@example.com", std::nullopt, 0);
  const auto same =
      explain_oauth_error("invalid_grant", "", oauth_step::refresh, "alice@example.com");
  EXPECT_EQ(unknown.cause, same.cause);
  EXPECT_EQ(unknown.fix, week.fix);
}

}  // namespace
}  // namespace oauth_relay::auth
