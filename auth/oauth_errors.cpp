// The table from Google's answers to causes and fixes. Each text is what an
// administrator reads in a terminal or a browser: one line, the account and
// config key named, the command to run spelled out.
#include "auth/oauth_errors.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>

#include "auth/consent.hpp"
#include "auth/microsoft_errors.hpp"

namespace oauth_relay::auth {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Google: "A Google Cloud Platform project with an OAuth consent screen
// configured for an external user type and a publishing status of Testing is
// issued a refresh token expiring in 7 days".
constexpr std::chrono::seconds testing_refresh_lifetime{7 * 86400};
// A token is refreshed at least hourly, so the refusal of an expired one
// comes within the hour after; a clock off by minutes changes nothing.
constexpr std::chrono::seconds refresh_slack{3600};

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

std::string who(std::string_view account) {
  return account.empty() ? std::string("the account") : std::string(account);
}

std::string authorize_command(std::string_view account) {
  return "oauth-relayctl authorize " +
         (account.empty() ? std::string("ADDRESS") : std::string(account));
}

std::string host_port(const endpoint& where) {
  const bool v6 = where.host.find(':') != std::string::npos;
  return (v6 ? "[" + where.host + "]" : where.host) + ":" + std::to_string(where.port);
}

// The interesting tail of a TLS failure text: after "certificate verify
// failed: " (OpenSSL via the upstream client) or "SSL certificate problem: " (curl).
std::string tls_reason(std::string_view detail) {
  for (std::string_view marker : {"certificate verify failed: ", "SSL certificate problem: "}) {
    if (const auto at = detail.find(marker); at != std::string_view::npos) {
      return std::string(detail.substr(at + marker.size()));
    }
  }
  return std::string(detail);
}

}  // namespace

advice explain_oauth_error(std::string_view error, std::string_view description, oauth_step step,
                           std::string_view account) {
  const std::string a = who(account);
  const std::string again = authorize_command(account);
  if (error == "invalid_grant") {
    if (step == oauth_step::refresh) return explain_refresh_refusal(account, std::nullopt, 0);
    return {
        "Google refused the authorization code (invalid_grant): it expired, was already used, "
        "or does not match this request's PKCE verifier",
        "run " + again + " again and finish the consent within a few minutes"};
  }
  if (error == "access_denied") {
    return {
        "the consent was refused (access_denied): " + a +
            " is not a test user of the OAuth consent screen, or Cancel was clicked",
        "add " + a +
            " under Google Auth Platform > Audience > Test users (or publish the app), then run " +
            again + " and click Continue"};
  }
  if (error == "redirect_uri_mismatch") {
    return {
        "Google refused the loopback redirect (redirect_uri_mismatch): the OAuth client is not "
        "a \"Desktop app\" client",
        "create an OAuth client of type Desktop app (Google Auth Platform > Clients > Create "
        "client) and put its client ID and secret in oauth.client_id and "
        "oauth.client_secret_file"};
  }
  if (error == "invalid_client") {
    return {
        "Google does not know this OAuth client (invalid_client): oauth.client_id or the client "
        "secret is wrong, or the client was deleted",
        "copy the client ID and secret of the Desktop app client from Google Auth Platform > "
        "Clients into oauth.client_id and oauth.client_secret_file"};
  }
  if (error == "unauthorized_client") {
    return {"the OAuth client may not do this (unauthorized_client): the refresh token of " + a +
                " was issued to another client ID, or the client is not a Desktop app client",
            "check oauth.client_id (a Desktop app client), then run: " + again};
  }
  if (error == "invalid_scope") {
    return {"Google refused the scopes https://mail.google.com/ openid email (invalid_scope)",
            "if " + a +
                " is in Google Workspace, an administrator must allow this app's access to Gmail "
                "(Admin console > Security > API controls); then run: " +
                again};
  }
  if (error == "org_internal") {
    return {"the OAuth consent screen is Internal and " + a +
                " is not in its Google Workspace organization (org_internal)",
            "set the audience to External (Google Auth Platform > Audience) or use an account of "
            "the organization, then run: " +
                again};
  }
  if (error == "admin_policy_enforced") {
    return {"a Google Workspace administrator's policy blocks this app for " + a +
                " (admin_policy_enforced)",
            "ask the administrator to trust the OAuth client (Admin console > Security > API "
            "controls > App access control), then run: " +
                again};
  }
  std::string cause = "Google answered " + std::string(error.empty() ? "an error" : error);
  if (!description.empty()) cause += " (" + std::string(description) + ")";
  return {cause,
          "check the OAuth client and consent screen in Google Cloud console, then run: " + again};
}

advice explain_refresh_refusal(std::string_view account, std::optional<std::int64_t> authorized_at,
                               std::int64_t now) {
  const std::string a = who(account);
  const std::string again = authorize_command(account);
  const std::string publish =
      "publish the consent screen (Google Auth Platform > Audience > Publish app: In "
      "production), then run: " +
      again;
  if (!authorized_at) {
    return {"Google refused the refresh token of " + a +
                " (invalid_grant): it was revoked, or it expired after 7 days because the OAuth "
                "consent screen is in Testing",
            publish};
  }
  const std::int64_t age = now - *authorized_at;
  const std::string days = std::to_string(age / 86400);
  if (age >= testing_refresh_lifetime.count() - refresh_slack.count()) {
    return {"Google refused the refresh token of " + a + " (invalid_grant) " + days +
                " days after it was authorized: the OAuth consent screen is in Testing, where "
                "refresh tokens expire after 7 days",
            publish};
  }
  return {"Google refused the refresh token of " + a + " (invalid_grant) " + days +
              " days after it was authorized, too soon for the 7 days of a consent screen in "
              "Testing: it was revoked (by the user at myaccount.google.com > Security, a "
              "password change, or an administrator)",
          "run: " + again};
}

endpoint upstream_endpoint(const config::upstream_settings& upstream) {
  endpoint e;
  e.host = upstream.host;
  if (e.host.size() >= 2 && e.host.front() == '[' && e.host.back() == ']') {
    e.host = e.host.substr(1, e.host.size() - 2);
  }
  e.port = upstream.port;
  e.address_keys = "upstream.host and upstream.port";
  e.ca_key = "upstream.ca_file";
  e.ca_file = upstream.ca_file;
  return e;
}

endpoint token_endpoint(const config::oauth_settings& oauth) {
  endpoint e;
  e.address_keys = "oauth.token_url";
  e.ca_key = "oauth.ca_file";
  e.ca_file = oauth.ca_file;
  std::string_view url = oauth.token_url;
  e.port = 443;
  if (const auto scheme = url.find("://"); scheme != std::string_view::npos) {
    if (lower(url.substr(0, scheme)) == "http") e.port = 80;
    url.remove_prefix(scheme + 3);
  }
  url = url.substr(0, url.find_first_of("/?#"));
  if (const auto at = url.rfind('@'); at != std::string_view::npos) url.remove_prefix(at + 1);
  std::string_view host = url;
  std::string_view port;
  if (!url.empty() && url.front() == '[') {
    const auto close = url.find(']');
    host = url.substr(1, close == std::string_view::npos ? url.size() - 1 : close - 1);
    if (close != std::string_view::npos && close + 1 < url.size() && url[close + 1] == ':') {
      port = url.substr(close + 2);
    }
  } else if (const auto colon = url.rfind(':'); colon != std::string_view::npos) {
    host = url.substr(0, colon);
    port = url.substr(colon + 1);
  }
  e.host = std::string(host);
  if (!port.empty() && port.size() <= 5 &&
      std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); })) {
    const int p = std::stoi(std::string(port));
    if (p > 0 && p < 65536) e.port = static_cast<std::uint16_t>(p);
  }
  return e;
}

advice explain_transport_failure(const endpoint& where, std::string_view detail) {
  const std::string text = lower(detail);
  const std::string at = host_port(where);
  if (contains(text, "certificate")) {
    const std::string reason = tls_reason(detail);
    const std::string lowered = lower(reason);
    if (contains(lowered, "hostname mismatch") || contains(lowered, "subject name") ||
        contains(lowered, "does not match") || contains(lowered, "ip address mismatch")) {
      return {
          "the TLS certificate of " + at + " is not issued for " + where.host + " (" + reason + ")",
          "check " + where.address_keys +
              ": the name must be the one in the server's certificate (Gmail: smtp.gmail.com)"};
    }
    std::string fix;
    if (where.ca_file) {
      fix = "only the system's trusted CAs and " + where.ca_key + " (" + where.ca_file->string() +
            ") are trusted: if a proxy intercepts TLS, that file must hold its CA certificate; "
            "otherwise update ca-certificates";
    } else {
      fix = where.ca_key +
            " is not set, so only the system's trusted CAs (/etc/ssl/certs) are used: update "
            "ca-certificates, or if a proxy intercepts TLS set " +
            where.ca_key + " to its CA certificate";
    }
    return {"the TLS certificate of " + at + " is not trusted (" + reason + ")", fix};
  }
  if (contains(text, "tls") || contains(text, "ssl")) {
    return {"the TLS handshake with " + at + " failed (" + std::string(detail) + ")",
            "check " + where.address_keys +
                (where.ca_key == "upstream.ca_file"
                     ? " and upstream.tls (Gmail: port 587 with starttls, 465 with implicit)"
                     : std::string()) +
                "; a proxy that intercepts TLS may be in the way"};
  }
  if (contains(text, "refused") || contains(text, "couldn't connect") ||
      contains(text, "could not connect")) {
    return {"cannot connect to " + at + ": connection refused",
            "nothing accepts connections there: check " + where.address_keys +
                ", and that no local firewall rejects outgoing connections to port " +
                std::to_string(where.port)};
  }
  if (contains(text, "timed out") || contains(text, "timeout")) {
    return {"no answer from " + at + " (timed out)",
            "a firewall or proxy drops outgoing connections to port " + std::to_string(where.port) +
                ": allow them (some hosting providers block SMTP ports), or check " +
                where.address_keys};
  }
  if (contains(text, "resolve")) {
    return {"cannot resolve " + where.host,
            "check " + where.address_keys + " and the DNS resolver (/etc/resolv.conf)"};
  }
  if (contains(text, "unreachable")) {
    return {"cannot reach " + at + " (network unreachable)",
            "check the server's route to the Internet (and IPv6 if the name resolves to an IPv6 "
            "address)"};
  }
  return {"connection to " + at + " failed: " + std::string(detail),
          "check " + where.address_keys + " and the network between this server and " + where.host};
}

advice explain_token_failure(const token_response& r, oauth_step step, std::string_view account,
                             const config::oauth_settings& oauth) {
  if (r.http_status == 0) {
    // No HTTP exchange: the error is the transport's ("token endpoint unreachable: ...").
    std::string_view detail = r.error;
    constexpr std::string_view prefix = "token endpoint unreachable: ";
    if (detail.substr(0, prefix.size()) == prefix) detail.remove_prefix(prefix.size());
    return explain_transport_failure(token_endpoint(oauth), detail);
  }
  if (auto microsoft = explain_microsoft_token_error(r, account)) return *microsoft;
  if (!r.oauth_error.empty()) {
    return explain_oauth_error(r.oauth_error, r.oauth_description, step, account);
  }
  if (r.http_status == 200) {
    // The endpoint said yes but left out what the relay needs.
    if (contains(r.error, "no refresh token")) {
      return {"Google issued no refresh token", "run " + authorize_command(account) +
                                                    " again (it asks with access_type=offline "
                                                    "and prompt=consent)"};
    }
    if (contains(r.error, "another OAuth client")) {
      return {"the answer's id_token was issued to another OAuth client, not " + oauth.client_id +
                  "; nothing was stored",
              "check oauth.token_url (it must be Google's token endpoint, "
              "https://oauth2.googleapis.com/token) and oauth.client_id, then run " +
                  authorize_command(account) + " again"};
    }
    if (contains(r.error, "email_verified")) {
      return {
          "Google has not verified the email address of the account that consented; "
          "nothing was stored",
          "sign in to Google as " + std::string(account) +
              " (an account whose address Google has verified) and run " +
              authorize_command(account) + " again"};
    }
    if (contains(r.error, "id_token")) {
      return {"Google did not say which account consented (no id_token with an email claim)",
              "run " + authorize_command(account) +
                  " again and leave every permission on the consent screen ticked"};
    }
    return {r.error,
            "check oauth.token_url: it must be Google's token endpoint "
            "(https://oauth2.googleapis.com/token)"};
  }
  if (r.http_status >= 500 || r.http_status == 429 || r.http_status == 408) {
    return {
        "the token endpoint " + oauth.token_url + " answered HTTP " + std::to_string(r.http_status),
        "Google's side is failing or throttling: try again in a few minutes (oauth-relayd "
        "retries by itself)"};
  }
  return {r.error,
          "check oauth.token_url: it must be Google's token endpoint "
          "(https://oauth2.googleapis.com/token)"};
}

advice explain_service_account_failure(const token_response& r, std::string_view mailbox,
                                       const config::service_account_key& key,
                                       const config::oauth_settings& oauth) {
  const std::string m(mailbox);
  const std::string sa = "the service account " + key.client_email;
  const std::string test = "oauth-relayctl test " + m;
  const std::string delegation_page =
      "Admin console (admin.google.com) > Security > API controls > Domain-wide delegation";
  const std::string grant = "add (or edit) the client ID " + key.client_id +
                            " with the OAuth scope " + std::string(mail_scope);
  if (r.http_status == 0) {
    config::oauth_settings at = oauth;
    at.token_url = key.token_uri;  // the key file's, not oauth.token_url
    std::string_view detail = r.error;
    constexpr std::string_view prefix = "token endpoint unreachable: ";
    if (detail.substr(0, prefix.size()) == prefix) detail.remove_prefix(prefix.size());
    auto where = token_endpoint(at);
    where.address_keys = "token_uri in " + key.file.string();
    return explain_transport_failure(where, detail);
  }
  const std::string& e = r.oauth_error;
  if (e == "unauthorized_client" || e == "access_denied") {
    return {"Google refused " + sa + " a token for " + m + " (" + e +
                "): domain-wide delegation is not granted to its client ID " + key.client_id +
                " for the scope " + std::string(mail_scope),
            "a Google Workspace super administrator must, in the " + delegation_page + ", " +
                grant + " (it can take some minutes to apply), then run: " + test};
  }
  if (e == "invalid_scope") {
    return {"Google refused the scope " + std::string(mail_scope) + " for " + sa + " and " + m +
                " (invalid_scope)",
            "in the " + delegation_page + ", the entry for client ID " + key.client_id +
                " must list the scope " + std::string(mail_scope) +
                " exactly (with the trailing slash); then run: " + test};
  }
  const std::string description = lower(r.oauth_description);
  if (e == "invalid_grant") {
    if (contains(description, "email") || contains(description, "user id")) {
      return {"Google does not know the mailbox " + m + " in the domain of " + sa +
                  " (invalid_grant: " + r.oauth_description + ")",
              "send as an existing, active user of the Google Workspace domain (check the "
              "address in the Admin console > Directory > Users)"};
    }
    if (contains(description, "signature")) {
      return {"Google refused the signature of " + sa + " (invalid_grant: " + r.oauth_description +
                  "): its key " + key.private_key_id + " was deleted or disabled",
              "create a new JSON key (Google Cloud console > IAM & Admin > Service accounts > " +
                  key.client_email + " > Keys > Add key), replace " + key.file.string() +
                  " with it and run: systemctl reload oauth-relay"};
    }
    if (contains(description, "timeframe") || contains(description, "iat") ||
        contains(description, "exp")) {
      return {"Google refused the assertion of " + sa +
                  " as outside its validity (invalid_grant: " + r.oauth_description +
                  "): this host's clock is wrong",
              "synchronise the clock (timedatectl set-ntp true; timedatectl status), then run: " +
                  test};
    }
    return {"Google refused the assertion of " + sa + " for " + m + " (invalid_grant" +
                (r.oauth_description.empty() ? std::string() : ": " + r.oauth_description) + ")",
            "check " + key.file.string() + " is the current key of " + key.client_email +
                ", that " + m + " is a user of the domain, and the clock; then run: " + test};
  }
  if (e == "invalid_client") {
    return {"Google does not know " + sa + " (invalid_client): it was deleted or disabled",
            "create a service account and key (Google Cloud console > IAM & Admin > Service "
            "accounts), put the key in " +
                key.file.string() +
                ", grant its client ID domain-wide delegation, then run: " + test};
  }
  if (!e.empty()) {
    return {"Google answered " + e +
                (r.oauth_description.empty() ? std::string() : " (" + r.oauth_description + ")") +
                " to " + sa + " for " + m,
            "check the service account and its domain-wide delegation (" + delegation_page +
                "), then run: " + test};
  }
  if (r.http_status >= 500 || r.http_status == 429 || r.http_status == 408) {
    return {
        "the token endpoint " + key.token_uri + " answered HTTP " + std::to_string(r.http_status),
        "Google's side is failing or throttling: try again in a few minutes (oauth-relayd "
        "retries by itself)"};
  }
  return {r.error,
          "check token_uri in " + key.file.string() +
              ": it must be Google's token endpoint (https://oauth2.googleapis.com/token)"};
}

advice explain_smtp_auth_refusal(int code, std::string_view enhanced, std::string_view text,
                                 std::string_view account, std::string_view host) {
  const std::string a = who(account);
  if (auto exchange = explain_exchange_reply(code, enhanced, text, account)) return *exchange;
  std::string reply = std::to_string(code);
  if (!enhanced.empty()) reply += " " + std::string(enhanced);
  if (!text.empty()) reply += " " + std::string(text);
  if (code == 535) {
    return {std::string(host) + " refused the access token of " + a + " (" + reply + ")",
            "the token belongs to another Google account or lacks the scope "
            "https://mail.google.com/: run " +
                authorize_command(account) + ", sign in as " + a +
                " and leave the Gmail permission ticked"};
  }
  if (code == 534) {
    return {std::string(host) + " wants " + a + " to sign in on the web first (" + reply + ")",
            "sign in to Gmail as " + a + " in a browser, then run: oauth-relayctl test " +
                (account.empty() ? std::string("ADDRESS") : std::string(account))};
  }
  if (code >= 400 && code < 500) {
    return {std::string(host) + " cannot authenticate " + a + " right now (" + reply + ")",
            "a temporary refusal: try again later (oauth-relayd retries by itself)"};
  }
  return {std::string(host) + " refused AUTH XOAUTH2 for " + a + " (" + reply + ")",
          "check that " + a +
              " is a Gmail or Google Workspace account and that upstream.host is smtp.gmail.com"};
}

}  // namespace oauth_relay::auth
