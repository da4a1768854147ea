// Microsoft's error codes as cause and fix: AADSTS codes from the identity
// platform's error_description, and Exchange Online's SMTP replies.
#include "auth/microsoft_errors.hpp"

#include <cctype>
#include <string>

namespace oauth_relay::auth {
namespace {

std::string who(std::string_view account) {
  return account.empty() ? std::string("the account") : std::string(account);
}

std::string address_or_placeholder(std::string_view account) {
  return account.empty() ? std::string("ADDRESS") : std::string(account);
}

// The enhanced code Exchange uses for a mailbox or tenant with SMTP AUTH
// client submission turned off.
constexpr std::string_view smtp_auth_disabled = "5.7.139";

}  // namespace

std::optional<long> aadsts_code(std::string_view description) {
  constexpr std::string_view prefix = "AADSTS";
  if (!description.starts_with(prefix)) return std::nullopt;
  description.remove_prefix(prefix.size());
  long n = 0;
  std::size_t digits = 0;
  while (digits < description.size() && digits < 9 &&
         std::isdigit(static_cast<unsigned char>(description[digits]))) {
    n = n * 10 + (description[digits] - '0');
    ++digits;
  }
  if (digits == 0) return std::nullopt;
  return n;
}

std::optional<advice> explain_microsoft_token_error(const token_response& r,
                                                    std::string_view account) {
  const auto code = aadsts_code(r.oauth_description);
  if (!code) return std::nullopt;
  const std::string a = who(account);
  const std::string address = address_or_placeholder(account);
  const std::string again = "oauth-relayctl authorize " + address;
  const std::string said = " (" + r.oauth_description + ")";
  switch (*code) {
    case 65001:
      return advice{"Microsoft says nobody has consented to the app's permissions for " + a + said,
                    "an administrator grants consent (Entra ID > App registrations > the app > "
                    "API permissions > Grant admin consent), or " +
                        a + " consents in: " + again};
    case 50076:
    case 50079:
      return advice{"Microsoft wants multi-factor authentication for " + a +
                        " before it issues a token" + said,
                    "run " + again + " (or with --device) and complete the MFA prompt"};
    case 700082:
    case 700084:
    case 50173:
      return advice{"Microsoft refused the refresh token of " + a +
                        ": it expired (unused for 90 days) or was revoked" + said,
                    "run " + again + " to get a new one"};
    case 7000215:
      return advice{"Microsoft refused the app's client secret" + said,
                    "put the client secret's Value (not its Secret ID) from Entra ID > App "
                    "registrations > the app > Certificates & secrets in the file "
                    "providers.microsoft.client_secret_file names, then: systemctl reload "
                    "oauth-relay"};
    case 7000222:
      return advice{"the app's client secret has expired" + said,
                    "create a new client secret (Entra ID > App registrations > the app > "
                    "Certificates & secrets), put its Value in "
                    "providers.microsoft.client_secret_file, then: systemctl reload oauth-relay"};
    case 700016:
      return advice{"Microsoft does not know the app's client ID in this tenant" + said,
                    "check providers.microsoft.client_id (the Application (client) ID of the app "
                    "registration) and providers.microsoft.tenant"};
    case 90002:
      return advice{"Microsoft does not know the tenant" + said,
                    "check providers.microsoft.tenant: the tenant's ID or its domain, e.g. "
                    "contoso.onmicrosoft.com"};
    case 7000218:
      return advice{"Microsoft wants a client secret, or public client flows allowed" + said,
                    "turn on \"Allow public client flows\" (Entra ID > App registrations > the "
                    "app > Authentication), or set providers.microsoft.client_secret_file"};
    default:
      return std::nullopt;
  }
}

std::optional<advice> explain_exchange_reply(int code, std::string_view enhanced,
                                             std::string_view text, std::string_view account) {
  const std::string a = who(account);
  const std::string address = address_or_placeholder(account);
  std::string reply = std::to_string(code);
  if (!enhanced.empty()) reply += " " + std::string(enhanced);
  if (!text.empty()) reply += " " + std::string(text);
  if (code == 535 && enhanced == smtp_auth_disabled) {
    return advice{"Exchange Online has SMTP AUTH turned off for " + a + " or its organization (" +
                      reply + ")",
                  "an Exchange administrator runs, in Exchange Online PowerShell: Set-CASMailbox "
                  "-Identity " +
                      address +
                      " -SmtpClientAuthenticationDisabled $false (and, if it is off for the "
                      "whole organization: Set-TransportConfig "
                      "-SmtpClientAuthenticationDisabled $false); then: oauth-relayctl test " +
                      address};
  }
  if (code == 535 && enhanced == "5.7.3") {
    return advice{"Exchange Online refused the access token of " + a + " (" + reply + ")",
                  "the token lacks SMTP.Send or belongs to another mailbox: check the app "
                  "registration's API permissions (SMTP.Send delegated, or SMTP.SendAsApp with "
                  "the mailbox permission for app_only), then run: oauth-relayctl authorize " +
                      address};
  }
  if (code == 554 && enhanced == "5.2.252") {
    return advice{"Exchange Online refused to send as this sender from " + a +
                      " (SendAsDenied: " + reply + ")",
                  "grant " + a +
                      " Send As on the sender's mailbox (Exchange admin center > Recipients > "
                      "Mailboxes > the sender > Delegation), or send with " +
                      a + " as the envelope sender"};
  }
  return std::nullopt;
}

}  // namespace oauth_relay::auth
