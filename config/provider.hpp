// What differs between the mail providers an account can belong to (Google,
// Microsoft 365): endpoints, scopes, upstream and limits, resolved per account from the settings.
#pragma once

#include <string>
#include <string_view>

#include "config/config.hpp"

namespace oauth_relay::config {

// Google's scope for SMTP with XOAUTH2 (and IMAP/POP, which the relay never uses).
inline constexpr std::string_view google_mail_scope = "https://mail.google.com/";
// ... and what a consent asks for: the mail scope and the id_token's email.
inline constexpr std::string_view google_consent_scope = "https://mail.google.com/ openid email";
// Microsoft identity platform: the delegated permission for SMTP AUTH with
// OAuth, and offline_access for the refresh token.
inline constexpr std::string_view microsoft_refresh_scope =
    "https://outlook.office.com/SMTP.Send offline_access";
// ... and what a consent asks for: the same plus the id_token's claims that
// name the consenting account (OpenID Connect Core §5.4).
inline constexpr std::string_view microsoft_consent_scope =
    "https://outlook.office.com/SMTP.Send offline_access openid profile email";
// The client credentials grant asks for the resource's application
// permissions as granted (SMTP.SendAsApp): RFC 6749 §4.4 with Microsoft's /.default.
inline constexpr std::string_view microsoft_app_only_scope =
    "https://outlook.office365.com/.default";
// The scope a delegated Microsoft token must hold to send (what the token
// endpoint lists back).
inline constexpr std::string_view microsoft_send_scope = "https://outlook.office.com/SMTP.Send";
// Exchange Online's sending limits per mailbox (Microsoft's "Exchange Online
// limits": 10,000 recipients a day, 30 messages a minute); each applied when
// the account sets none.
inline constexpr std::size_t exchange_recipients_per_day = 10'000;
inline constexpr std::size_t exchange_messages_per_minute = 30;

// One provider as the relay uses it. Plain values: copy freely.
struct provider {
  provider_kind kind = provider_kind::google;
  std::string display_name = "Google";  // in messages: "sign in to Google as ..."
  // The OAuth client and endpoints (client_id, client_secret, auth_url,
  // token_url, ca_file) in the shape Google's `oauth:` has.
  oauth_settings oauth;
  // Sent with a refresh (Microsoft's v2.0 endpoint asks for it); empty: none
  // (Google keeps the consent's scope).
  std::string refresh_scope;
  std::string consent_scope;    // what authorize asks for
  std::string app_only_scope;   // the client credentials grant's; empty: not offered
  std::string device_code_url;  // RFC 8628 §3.1; empty: not offered
  upstream_settings upstream;   // where its mail goes
  // The config keys that hold its settings, for messages: "oauth" or "providers.microsoft".
  std::string oauth_key;
  std::string upstream_key;

  bool is_microsoft() const { return kind == provider_kind::microsoft; }
};

// "{authority}/{tenant}/oauth2/v2.0/{endpoint}", without a doubled slash.
std::string microsoft_endpoint(const microsoft_settings& ms, std::string_view endpoint);

// The provider `kind` as `s` configures it. Microsoft without
// providers.microsoft (which the config check refuses for an account) is
// its defaults with no client.
provider provider_of(const settings& s, provider_kind kind);
// The provider of the configured account `address` (compared without case);
// Google for anything else (domain pattern mailboxes are Google's).
provider_kind provider_kind_of(const std::vector<account_settings>& accounts,
                               std::string_view address);
inline provider_kind provider_kind_of(const settings& s, std::string_view address) {
  return provider_kind_of(s.accounts, address);
}
inline provider provider_of(const settings& s, std::string_view address) {
  return provider_of(s, provider_kind_of(s, address));
}

// The tenants that name no single organization: app-only needs a real one.
bool is_multi_tenant(std::string_view tenant);

}  // namespace oauth_relay::config
